"""The database: tables and transactions, for SQLite (embedded) and PostgreSQL (several hosts).

SQLAlchemy Core, not an ORM: the queue depends on a few exact statements (claim with
SKIP LOCKED, conditional completion), which read best written out. Each transaction is
either `read()` or `write()`:

- SQLite runs in WAL mode, so readers never wait for the writer. A `write()` transaction
  starts with BEGIN IMMEDIATE: it takes the write lock up front, so two claimers are
  serialised instead of failing halfway with "database is locked".
- PostgreSQL runs at READ COMMITTED; claims lock the rows they take with
  `FOR UPDATE SKIP LOCKED`, so concurrent workers never take the same job.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import Engine, make_url

metadata = MetaData()

videos = Table(
    "videos",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),  # creation order, for paging
    Column("id", String(64), nullable=False, unique=True),
    Column("key_id", String(64), nullable=True),  # owner; None when auth is off
    Column("kind", String(16), nullable=False),  # create | remix | edit | extend
    Column("model", String(128), nullable=False),  # as the client named it (alias kept)
    Column("engine_model", String(128), nullable=False),  # the registry id that runs it
    Column("prompt", Text, nullable=False),
    Column("negative_prompt", Text, nullable=True),
    Column("size", String(16), nullable=False),
    Column("seconds", Integer, nullable=False),  # generated now
    Column("total_seconds", Integer, nullable=False),  # reported: source + new for extensions
    Column("seed", BigInteger, nullable=False),
    Column("steps", Integer, nullable=True),
    Column("guidance", Float, nullable=True),
    Column("has_first_frame", Boolean, nullable=False, default=False),
    Column("has_extend_from", Boolean, nullable=False, default=False),
    Column("remixed_from_video_id", String(64), nullable=True),
    Column("source_video_id", String(64), nullable=True),
    Column(
        "status", String(16), nullable=False
    ),  # queued | in_progress | completed | failed | expired
    Column("progress", Integer, nullable=False, default=0),
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("completed_at", Float, nullable=True),
    Column("expires_at", Float, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("claim_token", String(64), nullable=True),  # who may write the result
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires_at", Float, nullable=True),
    Column("output_dir", String(64), nullable=True),  # the winning attempt's folder
)
Index(
    "ix_videos_queue",
    videos.c.status,
    videos.c.engine_model,
    videos.c.size,
    videos.c.seconds,
    videos.c.seq,
)
Index("ix_videos_owner", videos.c.key_id, videos.c.seq)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),  # public part of the key, for lookup
    Column("name", String(128), nullable=False, unique=True),
    Column("key_hash", String(128), nullable=False),  # sha256 of the whole key
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("rpm_limit", Integer, nullable=True),  # None: the server's default
    Column("in_flight_limit", Integer, nullable=True),
    Column("seconds_per_day_limit", Integer, nullable=True),
)

usage = Table(
    "usage",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("key_id", String(64), nullable=False),
    Column("video_id", String(64), nullable=False),
    Column("seconds", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
)
Index("ix_usage_key_time", usage.c.key_id, usage.c.created_at)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("key_id", String(64), nullable=True),  # None: the whole server's events
    Column("url", Text, nullable=False),
    Column("secret", String(128), nullable=False),  # needed in clear to sign (HMAC)
    Column("created_at", Float, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("endpoint_id", String(64), nullable=False),
    Column("event_id", String(64), nullable=False),  # the webhook-id header, same on retries
    Column("event_type", String(64), nullable=False),
    Column("video_id", String(64), nullable=False),
    Column("payload", Text, nullable=False),  # exact bytes signed and sent
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("delivered_at", Float, nullable=True),
)
Index("ix_deliveries_due", webhook_deliveries.c.status, webhook_deliveries.c.next_attempt_at)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("delivery_seq", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration_ms", Float, nullable=False),
)

workers = Table(
    "workers",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
)


class Database:
    """An engine plus the two kinds of transaction the services use."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.url = url
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        # The API serves sync routes from a 40-thread pool: let each thread hold a connection.
        kwargs: dict[str, Any] = {"future": True, "pool_size": 20, "max_overflow": 30}
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
            if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
                url = str(parsed.set(drivername="postgresql+psycopg"))  # psycopg 3 is what we ship
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)

    def create_schema(self) -> None:
        """Create missing tables; safe when several processes start at once."""
        with self.engine.begin() as conn:
            if not self.is_sqlite:
                # Concurrent CREATE TABLE races on PostgreSQL's catalog: serialise starters.
                conn.execute(text("SELECT pg_advisory_xact_lock(7310131)"))
            metadata.create_all(conn, checkfirst=True)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A transaction that only reads (never blocks on, nor blocks, the writer)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that writes; on SQLite it holds the write lock from its first line."""
        with self.engine.connect() as conn:
            conn.execution_options(vidora_write=True)
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        self.engine.dispose()


def _configure_sqlite(engine: Engine) -> None:
    """WAL, a busy timeout, and our own BEGIN (pysqlite's implicit one cannot be IMMEDIATE)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("vidora_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
