"""API keys: created by the CLI, stored hashed, checked on every request.

A key reads `sk-vidora-<id>-<secret>`. The id (public, 12 hex) finds the row; the SHA-256
of the whole key is compared in constant time with the stored hash, so the database never
holds a usable key and a timing probe learns nothing. Keys are looked up on every request
(no cache), so a revocation holds from the next request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from vidora.server.db import Database, api_keys
from vidora.server.errors import AuthenticationFailed

PREFIX = "sk-vidora-"
_ID_LENGTH = 12
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class ApiKey:
    """A key's record (never the key itself)."""

    id: str
    name: str
    created_at: float
    revoked_at: float | None
    rpm_limit: int | None
    """Requests per minute; None means the server's default, 0 unlimited."""
    in_flight_limit: int | None
    """Queued + running jobs at once."""
    seconds_per_day_limit: int | None
    """Seconds of video requested per rolling 24 hours."""

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    """Create, list, revoke and authenticate keys."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        name: str,
        *,
        rpm_limit: int | None = None,
        in_flight_limit: int | None = None,
        seconds_per_day_limit: int | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key record and the key, which is shown once and never stored."""
        if not _NAME.match(name):
            raise ValueError(
                f"key name {name!r} must be 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        for label, value in (
            ("rpm limit", rpm_limit),
            ("jobs in flight limit", in_flight_limit),
            ("seconds per day limit", seconds_per_day_limit),
        ):
            if value is not None and value < 0:
                raise ValueError(f"{label} must be 0 (unlimited) or more, got {value}")
        key_id = secrets.token_hex(_ID_LENGTH // 2)
        key = f"{PREFIX}{key_id}-{secrets.token_urlsafe(32)}"
        record = ApiKey(
            id=key_id,
            name=name,
            created_at=time.time(),
            revoked_at=None,
            rpm_limit=rpm_limit,
            in_flight_limit=in_flight_limit,
            seconds_per_day_limit=seconds_per_day_limit,
        )
        try:
            with self.db.write() as conn:
                conn.execute(insert(api_keys).values(**record.__dict__, key_hash=_hash(key)))
        except IntegrityError as error:
            raise ValueError(f"a key named {name!r} already exists") from error
        return record, key

    def list(self) -> list[ApiKey]:
        with self.db.read() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at)).all()
        return [_record(row) for row in rows]

    def revoke(self, name_or_id: str) -> ApiKey:
        """Revoke by name or id; ValueError if there is no such key."""
        match = or_(api_keys.c.name == name_or_id, api_keys.c.id == name_or_id)
        with self.db.write() as conn:
            conn.execute(
                update(api_keys)
                .where(match, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
            row = conn.execute(select(api_keys).where(match)).first()
        if row is None:
            raise ValueError(f"no API key named {name_or_id!r}; `vidora keys list` shows them")
        return _record(row)

    def find(self, name_or_id: str) -> ApiKey | None:
        match = or_(api_keys.c.name == name_or_id, api_keys.c.id == name_or_id)
        with self.db.read() as conn:
            row = conn.execute(select(api_keys).where(match)).first()
        return _record(row) if row else None

    def authenticate(self, authorization: str | None) -> ApiKey:
        """The key for an `Authorization` header, or AuthenticationFailed saying what is wrong."""
        if not authorization:
            raise AuthenticationFailed(
                "You didn't provide an API key. Send it as 'Authorization: Bearer sk-vidora-...'; "
                "create one with `vidora keys create NAME`.",
                code="missing_api_key",
            )
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise AuthenticationFailed("The Authorization header must read 'Bearer <key>'.")
        key_id = key[len(PREFIX) : len(PREFIX) + _ID_LENGTH] if key.startswith(PREFIX) else ""
        row = None
        if key_id:
            with self.db.read() as conn:
                row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        stored = row.key_hash if row is not None else "0" * 64
        if not hmac.compare_digest(_hash(key), stored) or row is None:
            raise AuthenticationFailed(f"Incorrect API key provided: {_redact(key)}.")
        record = _record(row)
        if record.revoked:
            raise AuthenticationFailed(
                f"The API key {_redact(key)} ({record.name}) was revoked.", code="revoked_api_key"
            )
        return record


def _record(row: object) -> ApiKey:
    values = dict(row._mapping)  # type: ignore[attr-defined]
    values.pop("key_hash")
    return ApiKey(**values)


def _redact(key: str) -> str:
    return key[:14] + "*" * 4 + key[-4:] if len(key) > 20 else "*" * len(key)
