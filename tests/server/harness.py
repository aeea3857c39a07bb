"""Helpers that run the server the way users do: real processes on free ports.

`ENGINE` names the model test servers load: a deterministic stand-in (fake_engine.py),
so the suite runs in seconds and can check pixels; test_api_pipeline.py runs the real
pipeline (a tiny random model) through the same server. Switching every test to the
pipeline is the one line `ENGINE = TINY_ENGINE` (pixel checks would then need loosening).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from vidora.server.db import Database
from vidora.server.keys import KeyStore
from vidora.server.services import Services, build_services
from vidora.server.settings import Settings
from vidora.weights import BUILTIN_MODEL

FAKE_ENGINE = "fake_engine:build"
"""A deterministic stand-in (fake_engine.py): pixels the tests can reason about, no torch."""
TINY_ENGINE = "vidora.server.engine:tiny_random_engine"
"""The real pipeline code with a 2-layer random model (test_api_pipeline.py uses it)."""
ENGINE = FAKE_ENGINE
"""What test servers load unless a test says otherwise (tests/server is on their PYTHONPATH)."""

HERE = Path(__file__).parent
SIZES = ["64x64", "96x64", "64x96"]

FAST_ENV = {
    "VIDORA_LEASE_SECONDS": "2",
    "VIDORA_POLL_INTERVAL": "0.1",
    "VIDORA_POLL_AFTER_MS": "100",
    "VIDORA_JANITOR_INTERVAL": "0.5",
    "VIDORA_WEBHOOK_BACKOFF_SECONDS": "0.2",
    "VIDORA_WEBHOOK_TIMEOUT_SECONDS": "2",
    "VIDORA_RPM_LIMIT": "0",
    "VIDORA_LOG_FORMAT": "json",
}
"""Short leases and polls, so durability tests take seconds rather than minutes."""


def write_registry(path: Path, *, engine: str = ENGINE, step_seconds: float = 0.0) -> Path:
    """A registry with the built-in model's name, sizes and aliases, served by `engine`.

    Written beside and renamed into place: a process started a moment earlier may be reading it.
    """
    options = f"{{step_seconds: {step_seconds}}}" if engine == FAKE_ENGINE else "{}"
    partial = path.with_name(path.name + ".partial")
    partial.write_text(
        f"default: {BUILTIN_MODEL}\n"
        "models:\n"
        f"  - id: {BUILTIN_MODEL}\n"
        f"    engine: {engine}\n"
        f"    options: {options}\n"
        f"    sizes: {SIZES}\n"
        "    seconds: [4, 8, 12]\n"
        "aliases:\n"
        f"  sora-2: {BUILTIN_MODEL}\n"
        f"  sora-2-pro: {BUILTIN_MODEL}\n"
    )
    partial.replace(path)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDORA_")}
    env.update(FAST_ENV)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


@dataclass
class Proc:
    """A `vidora serve` or `vidora worker` process with its log file."""

    args: list[str]
    log_path: Path
    env: dict[str, str]
    port: int | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self, timeout: float = 60.0) -> Proc:
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vidora.cli", *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        if self.port is not None:
            self._wait_healthy(timeout)
        return self

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"server did not become healthy in {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, exactly like a crashed host."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@dataclass
class Deployment:
    """A data dir, an optional external database and the processes started on them."""

    root: Path
    db_url: str | None = None
    step_seconds: float = 0.0
    engine: str | None = ENGINE
    """`module:callable` the test registry names; None runs the built-in registry."""
    env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    _count: itertools.count = field(default_factory=itertools.count)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def models(self) -> Path:
        return self.root / "models.yaml"

    def database(self) -> Database:
        url = self.db_url or f"sqlite:///{(self.data_dir / 'vidora.db').resolve()}"
        db = Database(url)
        db.create_schema()
        return db

    def _registry(self) -> Path | None:
        """The registry file the processes use; None (no --models) for the built-in one.

        Written afresh for each process, so a test that sets `step_seconds` after a fixture has
        already started services still gets the engine speed it asked for.
        """
        if self.engine is None:
            return None
        return write_registry(self.models, engine=self.engine, step_seconds=self.step_seconds)

    def _common(self) -> list[str]:
        args = ["--data-dir", str(self.data_dir)]
        registry = self._registry()
        args += ["--models", str(registry)] if registry else []
        return args + (["--db", self.db_url] if self.db_url else [])

    def server(
        self, *args: str, env: dict[str, str] | None = None, start: bool = True, timeout: float = 60
    ) -> Proc:
        port = free_port()
        proc = Proc(
            ["serve", "--port", str(port), *self._common(), *args],
            self.root / f"server-{next(self._count)}.log",
            _env({**self.env, **(env or {})}),
            port=port,
        )
        self.procs.append(proc)
        return proc.start(timeout) if start else proc

    def worker(self, *args: str, env: dict[str, str] | None = None) -> Proc:
        proc = Proc(
            ["worker", *self._common(), *args],
            self.root / f"worker-{next(self._count)}.log",
            _env({**self.env, **(env or {})}),
        )
        self.procs.append(proc)
        return proc.start()

    def services(self) -> Services:
        """The server's services in this process (no threads): queue jobs without HTTP."""
        settings = Settings(
            data_dir=self.data_dir,
            db_url=self.db_url or "",
            models_file=self._registry(),
            auth=False,
        )
        return build_services(settings)

    def key(self, name: str, **limits: int) -> str:
        db = self.database()
        try:
            return KeyStore(db).create(name, **limits)[1]
        finally:
            db.dispose()

    def logs(self) -> str:
        return "\n".join(f"--- {p.args[0]} {p.log_path.name}\n{p.log()}" for p in self.procs)

    def close(self) -> None:
        for proc in self.procs:
            proc.stop()


# --- PostgreSQL ------------------------------------------------------------------------------


def pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


def as_postgres(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: drop to the postgres user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


@dataclass
class PostgresCluster:
    port: int
    _dbs: itertools.count = field(default_factory=lambda: itertools.count(1))

    def new_database(self) -> str:
        """A fresh empty database; its SQLAlchemy URL."""
        import psycopg

        name = f"vidora_{os.getpid()}_{next(self._dbs)}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"
