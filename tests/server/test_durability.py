"""Durability with real processes, on SQLite and on PostgreSQL: no job lost, none doubled,
whatever happens to the workers.

Jobs are queued through the same VideoService the API uses, in this process, so the
time goes to the workers under test rather than to starting an API server. Leases are
2 s (FAST_ENV), so a killed worker's job is taken over within seconds.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator

import openai
import pytest
from harness import Deployment, PostgresCluster, Proc
from sqlalchemy import func, select

from vidora.server.db import videos
from vidora.server.db import workers as worker_rows
from vidora.server.jobs import COMPLETED, FAILED, IN_PROGRESS, QUEUED, Job
from vidora.server.protocol import CreateVideoRequest
from vidora.server.services import Services

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(params=["sqlite", "postgres"])
def deployment_on(request: pytest.FixtureRequest, deployment: Deployment) -> Iterator[Deployment]:
    if request.param == "postgres":
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        deployment.db_url = cluster.new_database()
    yield deployment


@pytest.fixture
def services(deployment_on: Deployment) -> Iterator[Services]:
    services = deployment_on.services()
    yield services
    services.db.dispose()


def queue_jobs(services: Services, count: int, **fields: object) -> list[str]:
    sizes = ["64x64", "96x64"]
    return [
        services.videos.create(
            None, CreateVideoRequest(prompt=f"job {i}", size=sizes[i % 2], **fields), None
        ).id
        for i in range(count)
    ]


def job(services: Services, video_id: str) -> Job:
    """The row as the database holds it, whichever key owns it."""
    with services.db.read() as conn:
        return Job.from_row(conn.execute(select(videos).where(videos.c.id == video_id)).one())


def wait_for(services: Services, ids: list[str], statuses: set[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(job(services, video_id).status in statuses for video_id in ids):
            return
        time.sleep(0.1)
    raise AssertionError(f"not {statuses} in {timeout} s: {[job(services, i).status for i in ids]}")


def wait_registered(services: Services, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with services.db.read() as conn:
            if conn.execute(select(func.count()).select_from(worker_rows)).scalar_one() >= count:
                return
        time.sleep(0.1)
    raise AssertionError(f"{count} workers did not start in {timeout} s")


def completions(deployment: Deployment) -> Counter[str]:
    """How many times each video was reported completed, across every process's log."""
    counts: Counter[str] = Counter()
    for proc in deployment.procs:
        for line in proc.log_path.read_text().splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("msg") == "video completed":
                    counts[entry["video_id"]] += 1
    return counts


def test_two_workers_on_one_queue_finish_20_jobs_none_lost_or_doubled(
    deployment_on: Deployment, services: Services
) -> None:
    deployment = deployment_on
    deployment.step_seconds = 0.05
    workers = [deployment.worker("--batch-size", "3") for _ in range(2)]
    wait_registered(services, 2)  # both polling before any job exists: both will get work
    ids = queue_jobs(services, 20)
    wait_for(services, ids, {COMPLETED, FAILED})
    assert {job(services, video_id).status for video_id in ids} == {COMPLETED}
    assert completions(deployment) == Counter({video_id: 1 for video_id in ids})
    for video_id in ids:
        row = job(services, video_id)
        assert row.attempts == 1
        folders = list((deployment.data_dir / "files" / video_id).iterdir())
        assert [folder.name for folder in folders] == [row.output_dir]
    busy = [proc for proc in workers if "job claimed" in proc.log_path.read_text()]
    assert len(busy) == 2, "both workers should have taken jobs"


def test_a_killed_worker_leaves_its_video_to_the_other(
    deployment_on: Deployment, services: Services
) -> None:
    deployment = deployment_on
    deployment.step_seconds = 0.4  # 1.6 s per batch: long enough to be killed mid-job
    workers = [deployment.worker() for _ in range(2)]
    wait_registered(services, 2)
    [video_id] = queue_jobs(services, 1)
    wait_for(services, [video_id], {IN_PROGRESS})
    owner = job(services, video_id).lease_owner or ""
    doomed: Proc = next(p for p in workers if p.process and f":{p.process.pid}:" in owner)
    doomed.kill()  # SIGKILL: no cleanup, no release
    wait_for(services, [video_id], {COMPLETED, FAILED})
    done = job(services, video_id)
    assert done.status == COMPLETED and done.attempts == 2
    assert done.output_dir is not None
    assert services.storage.output_path(video_id, done.output_dir, "video").stat().st_size > 0
    assert completions(deployment) == Counter({video_id: 1})


def test_a_restarted_server_finishes_every_queued_job(deployment_on: Deployment) -> None:
    deployment = deployment_on
    deployment.step_seconds = 0.2
    first = deployment.server("--batch-size", "2")
    client = openai.OpenAI(base_url=first.base_url, api_key=deployment.key("k"), max_retries=0)
    ids = [client.videos.create(prompt=f"before restart {i}", seconds="8").id for i in range(6)]
    first.stop()  # SIGTERM: the batch in progress is handed back
    services = deployment.services()
    try:
        statuses = [job_row.status for job_row in (job(services, i) for i in ids)]
        assert QUEUED in statuses and IN_PROGRESS not in statuses
        deployment.server("--batch-size", "2")
        wait_for(services, ids, {COMPLETED, FAILED})
        assert {job(services, video_id).status for video_id in ids} == {COMPLETED}
    finally:
        services.db.dispose()
    assert completions(deployment) == Counter({video_id: 1 for video_id in ids})
