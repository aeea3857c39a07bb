"""The job queue's guarantees, statement by statement, on SQLite and on PostgreSQL.

A controllable clock stands in for time, so lease expiry is tested without sleeping.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import PostgresCluster
from sqlalchemy import Connection

from vidora.server.db import Database
from vidora.server.jobs import (
    COMPLETED,
    EXPIRED,
    FAILED,
    IN_PROGRESS,
    QUEUED,
    Job,
    JobQueue,
    NewJob,
    new_video_id,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Events:
    """An outbox that remembers what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def enqueue(self, conn: Connection, event_type: str, job: Job, now: float) -> None:
        self.sent.append((event_type, job.id))


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
    else:
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        url = cluster.new_database()
    db = Database(url)
    db.create_schema()
    yield db
    db.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def queue(database: Database, clock: Clock, events: Events) -> JobQueue:
    return JobQueue(
        database, lease_seconds=10, max_attempts=2, ttl_seconds=100, outbox=events, clock=clock
    )


def add(queue: JobQueue, *, size: str = "64x64", seconds: int = 4, key: str | None = "k1") -> Job:
    return queue.insert(
        NewJob(
            id=new_video_id(),
            key_id=key,
            kind="create",
            model="sora-2",
            engine_model="m",
            prompt="p",
            negative_prompt=None,
            size=size,
            seconds=seconds,
            total_seconds=seconds,
            seed=1,
        )
    )


def test_a_claim_takes_the_oldest_job_and_compatible_ones_up_to_the_batch_size(
    queue: JobQueue,
) -> None:
    first = add(queue)
    other_size = add(queue, size="96x64")
    same = [add(queue) for _ in range(3)]
    other_seconds = add(queue, seconds=8)
    claim = queue.claim("w1", batch_size=3)
    assert claim is not None
    assert claim.ids == [first.id, same[0].id, same[1].id]
    assert all(job.status == IN_PROGRESS and job.attempts == 1 for job in claim.jobs)
    second = queue.claim("w2", batch_size=3)
    assert second is not None and second.ids == [other_size.id]  # the oldest queued, alone
    third = queue.claim("w3", batch_size=3)
    assert third is not None and third.ids == [same[2].id]
    assert queue.claim("w4", batch_size=3).ids == [other_seconds.id]  # type: ignore[union-attr]
    assert queue.claim("w5", batch_size=3) is None


def test_concurrent_claimers_never_share_a_job(queue: JobQueue) -> None:
    ids = {add(queue).id for _ in range(40)}
    taken: list[str] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        while (claim := queue.claim(name, batch_size=3)) is not None:
            with lock:
                taken.extend(claim.ids)
            for job in claim.jobs:
                assert queue.complete(claim, job)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == sorted(ids)  # every job once: none lost, none doubled
    assert queue.counts_by_status() == {COMPLETED: 40}


def test_an_expired_lease_is_claimed_again_and_only_the_new_claim_completes(
    queue: JobQueue, clock: Clock
) -> None:
    job = add(queue)
    dead = queue.claim("dead-worker", batch_size=1)
    assert dead is not None
    clock.now += 5
    assert queue.reap() == (0, 0)  # lease still running
    assert queue.heartbeat(dead) == {job.id}
    clock.now += 10.5  # 5 s + 10.5 s > the renewed 10 s lease
    assert queue.reap() == (1, 0)
    assert queue.get(job.id, "k1").status == QUEUED  # type: ignore[union-attr]
    alive = queue.claim("live-worker", batch_size=1)
    assert alive is not None and alive.jobs[0].attempts == 2
    assert queue.heartbeat(dead) == set()  # the dead worker lost it
    assert not queue.complete(dead, job)
    assert queue.complete(alive, job)
    done = queue.get(job.id, "k1")
    assert done is not None and done.status == COMPLETED and done.output_dir == alive.token
    assert not queue.fail(dead, job, "generation_failed", "late")  # still nothing from the loser


def test_after_max_attempts_the_job_fails_with_worker_lost(
    queue: JobQueue, clock: Clock, events: Events
) -> None:
    job = add(queue)
    assert queue.claim("w", batch_size=1) is not None
    clock.now += 11
    assert queue.reap() == (1, 0)  # first attempt lost: queued again
    assert queue.claim("w", batch_size=1) is not None
    clock.now += 11
    assert queue.reap() == (0, 1)  # second (the last allowed) lost: given up
    lost = queue.get(job.id, "k1")
    assert lost is not None and lost.status == FAILED and lost.error_code == "worker_lost"
    assert events.sent == [("video.failed", job.id)]
    assert queue.claim("w", batch_size=1) is None


def test_deleting_a_running_job_cancels_it(queue: JobQueue, events: Events) -> None:
    job = add(queue)
    claim = queue.claim("w", batch_size=1)
    assert claim is not None
    assert queue.delete(job.id, "other-key") is None  # another key cannot
    assert queue.delete(job.id, "k1") is not None
    assert queue.heartbeat(claim) == set()
    assert not queue.complete(claim, job)
    assert events.sent == []


def test_a_clean_shutdown_gives_jobs_back_without_spending_an_attempt(queue: JobQueue) -> None:
    job = add(queue)
    claim = queue.claim("w", batch_size=1)
    assert claim is not None
    queue.release(claim)
    again = queue.claim("w2", batch_size=1)
    assert again is not None and again.jobs[0].id == job.id and again.jobs[0].attempts == 1


def test_completion_and_failure_announce_themselves(queue: JobQueue, events: Events) -> None:
    ok, bad = add(queue), add(queue)
    claim = queue.claim("w", batch_size=2)
    assert claim is not None
    assert queue.complete(claim, ok)
    assert queue.fail(claim, bad, "generation_failed", "boom")
    assert events.sent == [("video.completed", ok.id), ("video.failed", bad.id)]
    failed = queue.get(bad.id, "k1")
    assert failed is not None and (failed.error_code, failed.error_message) == (
        "generation_failed",
        "boom",
    )


def test_completed_videos_expire_after_their_ttl(queue: JobQueue, clock: Clock) -> None:
    job = add(queue)
    claim = queue.claim("w", batch_size=1)
    assert claim is not None and queue.complete(claim, job)
    assert queue.due_for_expiry() == []
    clock.now += 101
    assert queue.due_for_expiry() == [job.id]
    assert queue.mark_expired([job.id]) == 1
    expired = queue.get(job.id, "k1")
    assert expired is not None and expired.status == EXPIRED
    assert queue.page("k1", after=None, limit=10, descending=True) == ([], False)


def test_owners_see_only_their_jobs(queue: JobQueue) -> None:
    mine, theirs, anonymous = add(queue, key="k1"), add(queue, key="k2"), add(queue, key=None)
    assert queue.get(theirs.id, "k1") is None
    assert queue.get(anonymous.id, "k1") is None
    assert queue.get(anonymous.id, None) is not None
    assert [job.id for job in queue.page("k1", after=None, limit=10, descending=False)[0]] == [
        mine.id
    ]
    assert queue.page("k1", after=theirs.id, limit=10, descending=False) is None
