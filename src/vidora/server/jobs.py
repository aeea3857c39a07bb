"""The durable job queue: one `videos` row per job, claimed by workers under a lease.

The life of a job::

    queued ──claim──► in_progress ──complete──► completed ──janitor──► expired
       ▲                  │  └─────fail──────► failed
       └──lease expired───┘  (after max_attempts: failed, worker_lost)

Guarantees, and the statement that gives each:
- a job is claimed by one worker at a time: the claim locks rows (`FOR UPDATE SKIP
  LOCKED` on PostgreSQL; BEGIN IMMEDIATE on SQLite) and flips them to in_progress;
- a dead worker's job runs again: its lease stops being renewed, `reap` requeues it;
- exactly one video per job: completion is a conditional update on the claim token, and
  records which attempt's folder holds the files, so a late loser changes nothing;
- deletion cancels: the row is gone, so the worker's next heartbeat and its completion
  find nothing and it discards its work.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Connection, and_, delete, func, insert, select, update

from vidora.server.db import Database, videos

QUEUED = "queued"
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
FAILED = "failed"
EXPIRED = "expired"
"""Internal only: files deleted by the janitor; the API answers 404 saying so."""


@dataclass(frozen=True)
class Job:
    """A snapshot of one `videos` row."""

    seq: int
    id: str
    key_id: str | None
    kind: str
    model: str
    engine_model: str
    prompt: str
    negative_prompt: str | None
    size: str
    seconds: int
    total_seconds: int
    seed: int
    steps: int | None
    guidance: float | None
    has_first_frame: bool
    has_extend_from: bool
    remixed_from_video_id: str | None
    source_video_id: str | None
    status: str
    progress: int
    error_code: str | None
    error_message: str | None
    created_at: float
    started_at: float | None
    completed_at: float | None
    expires_at: float | None
    attempts: int
    claim_token: str | None
    lease_owner: str | None
    lease_expires_at: float | None
    output_dir: str | None

    @classmethod
    def from_row(cls, row: Any) -> Job:
        return cls(**dict(row._mapping))


@dataclass(frozen=True)
class NewJob:
    """What the API decides about a job before it is queued."""

    id: str
    key_id: str | None
    kind: str
    model: str
    engine_model: str
    prompt: str
    negative_prompt: str | None
    size: str
    seconds: int
    total_seconds: int
    seed: int
    steps: int | None = None
    guidance: float | None = None
    has_first_frame: bool = False
    has_extend_from: bool = False
    remixed_from_video_id: str | None = None
    source_video_id: str | None = None


@dataclass(frozen=True)
class Claim:
    """Jobs one worker took in one claim, all sharing model, size and seconds."""

    token: str
    owner: str
    jobs: tuple[Job, ...]

    @property
    def ids(self) -> list[str]:
        return [job.id for job in self.jobs]


class Outbox(Protocol):
    """Where finished jobs announce themselves, inside the transaction that finishes them."""

    def enqueue(self, conn: Connection, event_type: str, job: Job, now: float) -> None: ...


class _NoOutbox:
    def enqueue(self, conn: Connection, event_type: str, job: Job, now: float) -> None:
        pass


def new_video_id() -> str:
    return "video_" + uuid.uuid4().hex


class JobQueue:
    """Every read and write of the `videos` table."""

    def __init__(
        self,
        db: Database,
        *,
        lease_seconds: float,
        max_attempts: int,
        ttl_seconds: float,
        outbox: Outbox | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.ttl_seconds = ttl_seconds
        self.outbox: Outbox = outbox or _NoOutbox()
        self.clock = clock

    # --- the API's side -------------------------------------------------------------------

    def insert(self, job: NewJob, conn: Connection | None = None) -> Job:
        values = {
            **job.__dict__,
            "status": QUEUED,
            "progress": 0,
            "attempts": 0,
            "created_at": self.clock(),
        }
        if conn is not None:
            return self._insert(conn, values)
        with self.db.write() as conn:
            return self._insert(conn, values)

    @staticmethod
    def _insert(conn: Connection, values: dict[str, Any]) -> Job:
        row = conn.execute(insert(videos).values(**values).returning(*videos.c)).one()
        return Job.from_row(row)

    def get(self, video_id: str, key_id: str | None) -> Job | None:
        """The job if it exists and belongs to `key_id` (expired tombstones included)."""
        with self.db.read() as conn:
            row = conn.execute(
                select(videos).where(videos.c.id == video_id, _owned(key_id))
            ).first()
        return Job.from_row(row) if row else None

    def page(
        self, key_id: str | None, *, after: str | None, limit: int, descending: bool
    ) -> tuple[list[Job], bool] | None:
        """One page of the owner's videos and whether more follow; None if `after` is unknown."""
        with self.db.read() as conn:
            query = select(videos).where(_owned(key_id), videos.c.status != EXPIRED)
            if after is not None:
                cursor = conn.execute(
                    select(videos.c.seq).where(videos.c.id == after, _owned(key_id))
                ).scalar()
                if cursor is None:
                    return None
                query = query.where(videos.c.seq < cursor if descending else videos.c.seq > cursor)
            order = videos.c.seq.desc() if descending else videos.c.seq.asc()
            rows = conn.execute(query.order_by(order).limit(limit + 1)).all()
        jobs = [Job.from_row(row) for row in rows]
        return jobs[:limit], len(jobs) > limit

    def delete(self, video_id: str, key_id: str | None) -> Job | None:
        """Remove the row (cancelling the job if it is queued or running); the row as it was."""
        with self.db.write() as conn:
            row = conn.execute(
                delete(videos).where(videos.c.id == video_id, _owned(key_id)).returning(*videos.c)
            ).first()
        return Job.from_row(row) if row else None

    def count_in_flight(self, key_id: str | None) -> int:
        """Queued and running jobs of one owner (None: the jobs made without a key)."""
        with self.db.read() as conn:
            return conn.execute(
                select(func.count())
                .select_from(videos)
                .where(_owned(key_id), videos.c.status.in_((QUEUED, IN_PROGRESS)))
            ).scalar_one()

    def counts_by_status(self) -> dict[str, int]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(videos.c.status, func.count()).group_by(videos.c.status)
            ).all()
        return {status: count for status, count in rows}

    # --- the worker's side ----------------------------------------------------------------

    def claim(self, owner: str, batch_size: int) -> Claim | None:
        """Take the oldest queued job and up to batch_size-1 compatible ones, atomically."""
        with self.db.read() as conn:  # cheap look first: idle workers must not take the write lock
            if (
                conn.execute(select(videos.c.seq).where(videos.c.status == QUEUED).limit(1)).first()
                is None
            ):
                return None
        now = self.clock()
        token = uuid.uuid4().hex
        with self.db.write() as conn:
            head = conn.execute(
                select(videos.c.engine_model, videos.c.size, videos.c.seconds)
                .where(videos.c.status == QUEUED)
                .order_by(videos.c.seq)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if head is None:
                return None
            ids = (
                conn.execute(
                    select(videos.c.id)
                    .where(
                        videos.c.status == QUEUED,
                        videos.c.engine_model == head.engine_model,
                        videos.c.size == head.size,
                        videos.c.seconds == head.seconds,
                    )
                    .order_by(videos.c.seq)
                    .limit(batch_size)
                    .with_for_update(skip_locked=True)
                )
                .scalars()
                .all()
            )
            rows = conn.execute(
                update(videos)
                .where(videos.c.id.in_(ids), videos.c.status == QUEUED)
                .values(
                    status=IN_PROGRESS,
                    claim_token=token,
                    lease_owner=owner,
                    lease_expires_at=now + self.lease_seconds,
                    attempts=videos.c.attempts + 1,
                    started_at=func.coalesce(videos.c.started_at, now),
                    progress=0,
                )
                .returning(*videos.c)
            ).all()
        if not rows:
            return None
        jobs = sorted((Job.from_row(row) for row in rows), key=lambda job: job.seq)
        return Claim(token=token, owner=owner, jobs=tuple(jobs))

    def heartbeat(self, claim: Claim, progress: int | None = None) -> set[str]:
        """Extend the lease (and record progress); the ids still ours (others were deleted)."""
        values: dict[str, Any] = {"lease_expires_at": self.clock() + self.lease_seconds}
        if progress is not None:
            values["progress"] = progress
        with self.db.write() as conn:
            rows = (
                conn.execute(
                    update(videos)
                    .where(_claimed(claim, claim.ids))
                    .values(**values)
                    .returning(videos.c.id)
                )
                .scalars()
                .all()
            )
        return set(rows)

    def complete(self, claim: Claim, job: Job) -> bool:
        """Mark the job completed with this attempt's files; False if the claim was lost."""
        now = self.clock()
        with self.db.write() as conn:
            row = conn.execute(
                update(videos)
                .where(_claimed(claim, [job.id]))
                .values(
                    status=COMPLETED,
                    progress=100,
                    completed_at=now,
                    expires_at=now + self.ttl_seconds,
                    output_dir=claim.token,
                    claim_token=None,
                    lease_owner=None,
                    lease_expires_at=None,
                )
                .returning(*videos.c)
            ).first()
            if row is not None:
                self.outbox.enqueue(conn, "video.completed", Job.from_row(row), now)
        return row is not None

    def fail(self, claim: Claim, job: Job, code: str, message: str) -> bool:
        """Mark the job failed; False if the claim was lost."""
        now = self.clock()
        with self.db.write() as conn:
            row = conn.execute(
                update(videos)
                .where(_claimed(claim, [job.id]))
                .values(
                    status=FAILED,
                    error_code=code,
                    error_message=message,
                    completed_at=now,
                    claim_token=None,
                    lease_owner=None,
                    lease_expires_at=None,
                )
                .returning(*videos.c)
            ).first()
            if row is not None:
                self.outbox.enqueue(conn, "video.failed", Job.from_row(row), now)
        return row is not None

    def release(self, claim: Claim) -> None:
        """Give unfinished jobs back on a clean shutdown, without spending an attempt."""
        with self.db.write() as conn:
            conn.execute(
                update(videos)
                .where(_claimed(claim, claim.ids))
                .values(
                    status=QUEUED,
                    attempts=videos.c.attempts - 1,
                    progress=0,
                    claim_token=None,
                    lease_owner=None,
                    lease_expires_at=None,
                )
            )

    def reap(self) -> tuple[int, int]:
        """Requeue jobs whose lease ended; fail those out of attempts. (requeued, lost)."""
        now = self.clock()
        expired = and_(videos.c.status == IN_PROGRESS, videos.c.lease_expires_at < now)
        with self.db.read() as conn:
            if conn.execute(select(videos.c.seq).where(expired).limit(1)).first() is None:
                return 0, 0
        with self.db.write() as conn:
            lost = conn.execute(
                update(videos)
                .where(expired, videos.c.attempts >= self.max_attempts)
                .values(
                    status=FAILED,
                    error_code="worker_lost",
                    error_message=(
                        f"The worker generating this video stopped responding "
                        f"{self.max_attempts} times; the job was given up."
                    ),
                    completed_at=now,
                    claim_token=None,
                    lease_owner=None,
                    lease_expires_at=None,
                )
                .returning(*videos.c)
            ).all()
            requeued = conn.execute(
                update(videos)
                .where(expired)
                .values(
                    status=QUEUED,
                    progress=0,
                    claim_token=None,
                    lease_owner=None,
                    lease_expires_at=None,
                )
            ).rowcount
            for row in lost:
                self.outbox.enqueue(conn, "video.failed", Job.from_row(row), now)
        return requeued, len(lost)

    def due_for_expiry(self, limit: int = 500) -> list[str]:
        with self.db.read() as conn:
            return list(
                conn.execute(
                    select(videos.c.id)
                    .where(videos.c.status == COMPLETED, videos.c.expires_at < self.clock())
                    .limit(limit)
                ).scalars()
            )

    def mark_expired(self, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        with self.db.write() as conn:
            return conn.execute(
                update(videos)
                .where(videos.c.id.in_(list(ids)), videos.c.status == COMPLETED)
                .values(status=EXPIRED, output_dir=None)
            ).rowcount


def _owned(key_id: str | None) -> ColumnElement[bool]:
    return videos.c.key_id.is_(None) if key_id is None else videos.c.key_id == key_id


def _claimed(claim: Claim, ids: Sequence[str]) -> ColumnElement[bool]:
    return and_(
        videos.c.id.in_(list(ids)),
        videos.c.claim_token == claim.token,
        videos.c.status == IN_PROGRESS,
    )
