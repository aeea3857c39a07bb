"""Server benchmarks; prints figures (tests never time anything).

1. Retrieve latency: p50 / p99 of `GET /v1/videos/{id}` from 100 concurrent clients while
   the server's worker is generating.
2. Throughput: jobs per minute for 20 queued 4 s jobs, with batching (--batch-size) and
   without (1), timed from the first claim to the last completion (model loading excluded).

    .venv/bin/python bench/bench_server.py                 # tiny random model (real code)
    .venv/bin/python bench/bench_server.py --engine builtin  # the built-in model

Each part starts a real `vidora serve` process on a fresh data dir and a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from vidora.server.db import Database, videos
from vidora.server.jobs import COMPLETED, JobQueue, NewJob, new_video_id
from vidora.server.keys import KeyStore
from vidora.server.registry import BUILTIN_MODEL

ENGINES = {
    "tiny": "vidora.server.engine:tiny_random_engine",
    "builtin": "vidora.server.engine:builtin_engine",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A `vidora serve` process on a temp data dir."""

    def __init__(self, engine: str, batch_size: int) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="vidora-bench-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (self.root / "models.yaml").write_text(
            f"models:\n  - id: {BUILTIN_MODEL}\n    engine: {ENGINES[engine]}\n"
            "    sizes: ['64x64', '96x64', '64x96']\n    seconds: [4, 8, 12]\n"
            f"aliases: {{sora-2: {BUILTIN_MODEL}}}\n"
        )
        self.data.mkdir(parents=True)
        self.db = Database(f"sqlite:///{self.data / 'vidora.db'}")
        self.db.create_schema()
        record, self.key = KeyStore(self.db).create(
            "bench", rpm_limit=0, in_flight_limit=0, seconds_per_day_limit=0
        )
        self.key_id = record.id
        self.queue = JobQueue(self.db, lease_seconds=60, max_attempts=3, ttl_seconds=3600)
        self.batch_size = batch_size
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        env = {**os.environ, "VIDORA_LOG_LEVEL": "WARNING", "VIDORA_POLL_INTERVAL": "0.05"}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vidora.cli",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data),
                "--models",
                str(self.root / "models.yaml"),
                "--batch-size",
                str(self.batch_size),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "server.log", "wb"),  # noqa: SIM115
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"server did not start; see {self.root / 'server.log'}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)
        self.db.dispose()

    def queue_jobs(self, count: int, seconds: int = 4) -> list[str]:
        """Insert `count` compatible jobs in one transaction: the worker sees them all at once."""
        ids = [new_video_id() for _ in range(count)]
        with self.db.write() as conn:
            for index, video_id in enumerate(ids):
                self.queue.insert(
                    NewJob(
                        video_id,
                        self.key_id,
                        "create",
                        BUILTIN_MODEL,
                        BUILTIN_MODEL,
                        f"a red circle moving right, take {index}",
                        None,
                        "64x64",
                        seconds,
                        seconds,
                        index,
                    ),
                    conn,
                )
        return ids

    def wait(self, ids: list[str], timeout: float = 1800) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.db.read() as conn:
                rows = conn.execute(videos.select().where(videos.c.id.in_(ids))).all()
            if all(row.status in (COMPLETED, "failed") for row in rows):
                failed = [row.id for row in rows if row.status != COMPLETED]
                if failed:
                    raise RuntimeError(f"{len(failed)} jobs failed; see {self.root / 'server.log'}")
                return
            time.sleep(0.1)
        raise TimeoutError("jobs did not finish")

    def span(self, ids: list[str]) -> float:
        """Seconds from the first claim to the last completion."""
        with self.db.read() as conn:
            rows = conn.execute(videos.select().where(videos.c.id.in_(ids))).all()
        return max(r.completed_at for r in rows) - min(r.started_at for r in rows)


def throughput(engine: str, batch_size: int, jobs: int) -> float:
    server = Server(engine, batch_size).start()
    try:
        server.wait(server.queue_jobs(1))  # load the model first
        ids = server.queue_jobs(jobs)
        server.wait(ids)
        return jobs / server.span(ids) * 60
    finally:
        server.stop()


async def _retrieve_load(
    url: str, key: str, ids: list[str], clients: int, duration: float
) -> list[float]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, limits=limits
    ) as http:
        stop = time.monotonic() + duration

        async def client(n: int) -> None:
            i = n
            while time.monotonic() < stop:
                started = time.perf_counter()
                response = await http.get(f"/v1/videos/{ids[i % len(ids)]}")
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()
                i += 1

        await asyncio.gather(*(client(n) for n in range(clients)))
    return latencies


def retrieve_latency(engine: str, clients: int, duration: float) -> tuple[np.ndarray, int]:
    server = Server(engine, batch_size=4).start()
    try:
        server.wait(server.queue_jobs(1))  # model loaded: the worker is now generating for real
        ids = server.queue_jobs(200)
        time.sleep(0.5)
        with server.db.read() as conn:
            before = conn.execute(videos.select().where(videos.c.status == COMPLETED)).all()
        latencies = asyncio.run(_retrieve_load(server.url, server.key, ids, clients, duration))
        with server.db.read() as conn:
            after = conn.execute(videos.select().where(videos.c.status == COMPLETED)).all()
        return np.array(latencies), len(after) - len(before)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", choices=sorted(ENGINES), default="tiny")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of retrieve load")
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    print(
        f"engine: {args.engine}; CPU cores: {os.cpu_count()}; "
        f"load average: {os.getloadavg()[0]:.1f}"
    )
    latencies, generated = retrieve_latency(args.engine, args.clients, args.duration)
    ms = latencies * 1000
    print(
        f"retrieve, {args.clients} concurrent clients, {args.duration:.0f} s while generating "
        f"({generated} videos finished meanwhile): {len(ms)} requests, "
        f"{len(ms) / args.duration:.0f} req/s, p50 {np.percentile(ms, 50):.1f} ms, "
        f"p99 {np.percentile(ms, 99):.1f} ms"
    )
    single = throughput(args.engine, 1, args.jobs)
    batched = throughput(args.engine, args.batch_size, args.jobs)
    print(f"{args.jobs} queued 4 s jobs, batch size 1: {single:.1f} jobs/min")
    print(
        f"{args.jobs} queued 4 s jobs, batch size {args.batch_size}: {batched:.1f} jobs/min "
        f"({batched / single:.2f}x)"
    )


if __name__ == "__main__":
    main()
