"""Webhooks: `video.completed` and `video.failed`, signed per Standard Webhooks.

Events are written to an outbox table in the same transaction that finishes the job (so an
event is never lost nor sent for a job that did not finish), then delivered by a
dispatcher running beside every worker. Each delivery is retried with exponential backoff
and every attempt is logged, in the log stream and in `webhook_attempts`. Endpoints belong
to a key (its own videos only) or to the whole server (`key_id` NULL).
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import Connection, Row, delete, insert, or_, select, update
from standardwebhooks import Webhook

from vidora.server.db import Database, webhook_attempts, webhook_deliveries, webhook_endpoints
from vidora.server.jobs import Job
from vidora.server.settings import check_webhook_secret

log = logging.getLogger("vidora.webhooks")

PENDING, DELIVERED, GAVE_UP = "pending", "delivered", "failed"
MAX_BACKOFF = 3600.0


def generate_secret() -> str:
    """A fresh `whsec_` secret: 32 random bytes, base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class Endpoint:
    id: str
    key_id: str | None
    url: str
    secret: str
    created_at: float


class WebhookEndpoints:
    """The endpoints table: add, list, remove, and the server-wide one from settings."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, url: str, *, key_id: str | None = None, secret: str | None = None) -> Endpoint:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook URL must start with http:// or https://, not {url!r}")
        secret = secret or generate_secret()
        check_webhook_secret(secret)
        endpoint = Endpoint("we_" + uuid.uuid4().hex, key_id, url, secret, time.time())
        with self.db.write() as conn:
            conn.execute(insert(webhook_endpoints).values(**endpoint.__dict__))
        return endpoint

    def list(self) -> list[Endpoint]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(webhook_endpoints).order_by(webhook_endpoints.c.created_at)
            ).all()
        return [Endpoint(**row._mapping) for row in rows]

    def remove(self, endpoint_id: str) -> None:
        with self.db.write() as conn:
            removed = conn.execute(
                delete(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
            ).rowcount
        if not removed:
            raise ValueError(
                f"no webhook endpoint {endpoint_id!r}; `vidora webhooks list` shows them"
            )

    def ensure_server_endpoint(self, url: str, secret: str) -> None:
        """Make the settings' server-wide endpoint exist (idempotent across processes)."""
        check_webhook_secret(secret)
        with self.db.write() as conn:
            found = conn.execute(
                select(webhook_endpoints.c.id).where(
                    webhook_endpoints.c.key_id.is_(None), webhook_endpoints.c.url == url
                )
            ).first()
            if found:
                conn.execute(
                    update(webhook_endpoints)
                    .where(webhook_endpoints.c.id == found.id)
                    .values(secret=secret)
                )
            else:
                conn.execute(
                    insert(webhook_endpoints).values(
                        id="we_" + uuid.uuid4().hex,
                        key_id=None,
                        url=url,
                        secret=secret,
                        created_at=time.time(),
                    )
                )


class WebhookOutbox:
    """Writes one delivery per matching endpoint when a job finishes (same transaction)."""

    def enqueue(self, conn: Connection, event_type: str, job: Job, now: float) -> None:
        owners = [webhook_endpoints.c.key_id.is_(None)]
        if job.key_id is not None:
            owners.append(webhook_endpoints.c.key_id == job.key_id)
        endpoints = conn.execute(select(webhook_endpoints.c.id).where(or_(*owners))).scalars().all()
        if not endpoints:
            return
        event_id = "evt_" + uuid.uuid4().hex
        payload = json.dumps(
            {
                "id": event_id,
                "object": "event",
                "created_at": int(now),
                "type": event_type,
                "data": {"id": job.id},
            },
            separators=(",", ":"),
        )
        conn.execute(
            insert(webhook_deliveries),
            [
                {
                    "endpoint_id": endpoint_id,
                    "event_id": event_id,
                    "event_type": event_type,
                    "video_id": job.id,
                    "payload": payload,
                    "status": PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for endpoint_id in endpoints
            ],
        )


def signed_headers(
    secret: str, message_id: str, payload: str, at: datetime | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt (a fresh timestamp each time)."""
    at = at or datetime.now(UTC)
    return {
        "content-type": "application/json",
        "user-agent": "vidora-webhooks/1",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, at, payload),
    }


class WebhookDispatcher:
    """Sends due deliveries; safe to run in every process (claims are atomic)."""

    def __init__(
        self,
        db: Database,
        *,
        max_attempts: int,
        backoff_seconds: float,
        timeout_seconds: float,
        on_attempt: Callable[[str], None] | None = None,
    ) -> None:
        self.db = db
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.timeout_seconds = timeout_seconds
        self.on_attempt = on_attempt
        self.client = httpx.Client(timeout=timeout_seconds, follow_redirects=False)

    def close(self) -> None:
        self.client.close()

    def backoff(self, attempts: int) -> float:
        """Delay before the next try after `attempts` failures: base, 2x base, 4x base..."""
        return min(self.backoff_seconds * 2 ** (attempts - 1), MAX_BACKOFF)

    def run_once(self, batch: int = 16) -> int:
        """Deliver what is due now; the number of attempts made."""
        now = time.time()
        with self.db.read() as conn:
            due = conn.execute(
                select(webhook_deliveries.c.seq)
                .where(
                    webhook_deliveries.c.status == PENDING,
                    webhook_deliveries.c.next_attempt_at <= now,
                )
                .limit(1)
            ).first()
        if due is None:
            return 0
        with self.db.write() as conn:
            rows = conn.execute(
                select(webhook_deliveries, webhook_endpoints.c.url, webhook_endpoints.c.secret)
                .join(
                    webhook_endpoints,
                    webhook_endpoints.c.id == webhook_deliveries.c.endpoint_id,
                    isouter=True,
                )
                .where(
                    webhook_deliveries.c.status == PENDING,
                    webhook_deliveries.c.next_attempt_at <= now,
                )
                .order_by(webhook_deliveries.c.next_attempt_at)
                .limit(batch)
                .with_for_update(skip_locked=True, of=webhook_deliveries)
            ).all()
            # Lease the rows: nobody else retries them while this process is sending.
            conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.seq.in_([row.seq for row in rows]))
                .values(next_attempt_at=now + 2 * self.timeout_seconds + 5)
            )
        for row in rows:
            self._attempt(row)
        return len(rows)

    def _attempt(self, r: Row[Any]) -> None:
        """One POST; record its outcome and schedule the next try or give up."""
        attempt = r.attempts + 1
        started = time.perf_counter()
        status_code: int | None = None
        error: str | None = None
        if r.url is None:
            error = "endpoint was removed"
        else:
            try:
                response = self.client.post(
                    r.url,
                    content=r.payload.encode(),
                    headers=signed_headers(r.secret, r.event_id, r.payload),
                )
                status_code = response.status_code
                if not 200 <= status_code < 300:
                    error = f"HTTP {status_code}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
        duration_ms = (time.perf_counter() - started) * 1000
        now = time.time()
        if error is None:
            values = {"status": DELIVERED, "delivered_at": now}
            outcome = "delivered"
        elif attempt >= self.max_attempts or r.url is None:
            values = {"status": GAVE_UP}
            outcome = "gave_up"
        else:
            values = {"next_attempt_at": now + self.backoff(attempt)}
            outcome = "retry"
        with self.db.write() as conn:
            conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.seq == r.seq)
                .values(attempts=attempt, last_status_code=status_code, last_error=error, **values)
            )
            conn.execute(
                insert(webhook_attempts).values(
                    delivery_seq=r.seq,
                    attempt=attempt,
                    at=now,
                    status_code=status_code,
                    error=error,
                    duration_ms=duration_ms,
                )
            )
        log.info(
            "webhook attempt",
            extra={
                "video_id": r.video_id,
                "event_id": r.event_id,
                "event_type": r.event_type,
                "url": r.url,
                "attempt": attempt,
                "status_code": status_code,
                "error": error,
                "outcome": outcome,
                "duration_ms": round(duration_ms, 1),
            },
        )
        if self.on_attempt is not None:
            self.on_attempt(outcome)

    def deliveries(self, video_id: str | None = None) -> list[dict[str, object]]:
        """Delivery records (for the CLI and tests), newest first."""
        query = select(webhook_deliveries).order_by(webhook_deliveries.c.seq.desc())
        if video_id is not None:
            query = query.where(webhook_deliveries.c.video_id == video_id)
        with self.db.read() as conn:
            return [dict(row._mapping) for row in conn.execute(query).all()]
