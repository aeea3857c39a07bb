"""Per-key limits: requests per minute, jobs in flight, seconds of video per day.

Each is answered with 429 and a `retry-after` that says when the request would pass.
Requests per minute are counted in this process's memory (a sliding window): cheap enough
to sit in front of every poll. The two job limits are counted in the database, inside the
transaction that queues the job, so every API process sees the same totals.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable

from sqlalchemy import Connection, func, insert, select

from vidora.server.db import usage, videos
from vidora.server.errors import RateLimited
from vidora.server.jobs import IN_PROGRESS, QUEUED
from vidora.server.keys import ApiKey
from vidora.server.settings import Settings

DAY = 24 * 3600.0
WINDOW = 60.0


class Limiter:
    """Checks a key's limits, falling back to the server's defaults where a key has none."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self._requests: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _limit(self, own: int | None, default: int) -> int:
        return default if own is None else own

    def check_request(self, key: ApiKey) -> None:
        """Count one request against the key's per-minute budget."""
        limit = self._limit(key.rpm_limit, self.settings.rpm_limit)
        if limit == 0:
            return
        now = self.clock()
        with self._lock:
            window = self._requests[key.id]
            while window and window[0] <= now - WINDOW:
                window.popleft()
            if len(window) >= limit:
                retry = window[0] + WINDOW - now
                raise RateLimited(
                    f"Rate limit reached for key {key.name}: {limit} requests per minute. "
                    f"Try again in {max(1, round(retry))} s.",
                    retry_after=retry,
                    code="rate_limit_exceeded",
                )
            window.append(now)

    def check_new_job(self, conn: Connection, key: ApiKey, seconds: int, now: float) -> None:
        """Refuse a job over the in-flight or daily budget; run inside the insert transaction."""
        in_flight = self._limit(key.in_flight_limit, self.settings.in_flight_limit)
        if in_flight:
            running = conn.execute(
                select(func.count())
                .select_from(videos)
                .where(videos.c.key_id == key.id, videos.c.status.in_((QUEUED, IN_PROGRESS)))
            ).scalar_one()
            if running >= in_flight:
                raise RateLimited(
                    f"Key {key.name} already has {running} videos queued or in progress "
                    f"(limit {in_flight}); wait for one to finish.",
                    retry_after=max(1.0, self.settings.poll_after_ms / 1000 * 5),
                    code="too_many_jobs_in_flight",
                )
        daily = self._limit(key.seconds_per_day_limit, self.settings.seconds_per_day_limit)
        if daily:
            rows = conn.execute(
                select(usage.c.seconds, usage.c.created_at)
                .where(usage.c.key_id == key.id, usage.c.created_at > now - DAY)
                .order_by(usage.c.created_at)
            ).all()
            used = sum(row.seconds for row in rows)
            if used + seconds > daily:
                retry = DAY
                freed = 0
                for row in rows:  # the earliest time enough old usage leaves the window
                    freed += row.seconds
                    if used - freed + seconds <= daily:
                        retry = row.created_at + DAY - now
                        break
                raise RateLimited(
                    f"Key {key.name} has used {used} of its {daily} seconds of video per day; "
                    f"{seconds} more would exceed it.",
                    retry_after=retry,
                    code="daily_seconds_exceeded",
                )

    @staticmethod
    def record_usage(
        conn: Connection, key: ApiKey, video_id: str, seconds: int, now: float
    ) -> None:
        conn.execute(
            insert(usage).values(key_id=key.id, video_id=video_id, seconds=seconds, created_at=now)
        )
