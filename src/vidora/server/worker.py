"""The worker: claim a batch, generate it, store the files, complete each job.

The same class runs inside `vidora serve` (a thread: the embedded default) and as
`vidora worker` (a process, any number of them on one PostgreSQL queue). While a batch is
generating, a heartbeat thread renews its lease and records progress; when every job of
the batch has been deleted it stops the engine early. A job whose worker dies is taken
again by another worker once its lease ends (see jobs.py).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import insert, update

from vidora.server.db import workers
from vidora.server.engine import Engine, GenerationRequest
from vidora.server.jobs import Claim, Job, JobQueue
from vidora.server.metrics import Metrics
from vidora.server.registry import Registry
from vidora.server.settings import Settings
from vidora.server.storage import Storage
from vidora.world.spec import FPS

log = logging.getLogger("vidora.worker")


class Abandon(Exception):
    """Raised from the progress callback to stop the engine: cancelled or shutting down."""


class Worker:
    """One generation loop over the shared queue."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        queue: JobQueue,
        storage: Storage,
        *,
        metrics: Metrics | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.queue = queue
        self.storage = storage
        self.metrics = metrics
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.engines: dict[str, Engine] = {}
        self.stop_event = threading.Event()
        self._wake = threading.Event()
        self._last_seen = 0.0

    # --- the loop -------------------------------------------------------------------------

    def wake(self) -> None:
        """A job was queued here: skip the rest of the idle wait."""
        self._wake.set()

    def stop(self) -> None:
        self.stop_event.set()
        self._wake.set()

    def run(self) -> None:
        """Work until `stop()`; errors in one round are logged and the loop goes on."""
        log.info(
            "worker started",
            extra={"worker": self.id, "db": self.queue.db.engine.url.render_as_string()},
        )
        while not self.stop_event.is_set():
            try:
                worked = self.run_once()
            except Exception:
                log.exception("worker round failed", extra={"worker": self.id})
                worked = False
            if not worked:
                self._wake.wait(self.settings.poll_interval)
                self._wake.clear()
        log.info("worker stopped", extra={"worker": self.id})

    def run_once(self) -> bool:
        """Reap expired leases, then claim and process one batch; whether there was work."""
        self._register()
        requeued, lost = self.queue.reap()
        if requeued or lost:
            log.warning("leases expired", extra={"requeued": requeued, "worker_lost": lost})
        claim = self.queue.claim(self.id, self.settings.batch_size)
        if claim is None:
            return False
        self.process(claim)
        return True

    # --- one batch ------------------------------------------------------------------------

    def process(self, claim: Claim) -> None:
        model = claim.jobs[0].engine_model
        for job in claim.jobs:
            log.info(
                "job claimed",
                extra={"video_id": job.id, "attempt": job.attempts, "batch": len(claim.jobs)},
            )
        pulse = _Heartbeat(
            self.queue, claim, self.settings.heartbeat_seconds, self.stop_event, self._register
        )
        pulse.start()
        try:
            requests, jobs = self._load_inputs(claim)
            if not jobs:
                return
            try:
                engine = self._engine(model)
            except Exception as error:
                log.exception("model failed to load", extra={"model": model})
                for job in jobs:
                    self._fail(
                        claim,
                        job,
                        "generation_failed",
                        f"The model {model} could not be loaded: {error}",
                    )
                return
            results = self._generate(engine, model, requests, jobs, claim, pulse)
            if results is None:
                return
            for job, request, frames in zip(jobs, requests, results, strict=True):
                if frames is None:
                    continue
                self._store(claim, job, request, frames)
        finally:
            pulse.stop()

    def _load_inputs(self, claim: Claim) -> tuple[list[GenerationRequest], list[Job]]:
        requests: list[GenerationRequest] = []
        jobs: list[Job] = []
        for job in claim.jobs:
            try:
                requests.append(self._request(job))
                jobs.append(job)
            except Exception as error:
                log.exception("job inputs unreadable", extra={"video_id": job.id})
                self._fail(
                    claim, job, "generation_failed", f"The job's inputs could not be read: {error}"
                )
        return requests, jobs

    def _request(self, job: Job) -> GenerationRequest:
        return GenerationRequest(
            prompt=job.prompt,
            negative_prompt=job.negative_prompt,
            size=job.size,
            seconds=job.seconds,
            seed=job.seed,
            steps=job.steps,
            guidance=job.guidance,
            first_frame=self.storage.load_first_frame(job.id) if job.has_first_frame else None,
            extend_from=self.storage.load_extend_from(job.id) if job.has_extend_from else None,
        )

    def _engine(self, model: str) -> Engine:
        if model not in self.engines:
            spec = self.registry.models.get(model)
            if spec is None:
                raise ValueError(f"model {model!r} is not in this worker's registry")
            started = time.perf_counter()
            self.engines[model] = spec.build_engine()
            log.info(
                "model loaded",
                extra={"model": model, "seconds": round(time.perf_counter() - started, 2)},
            )
        return self.engines[model]

    def _generate(
        self,
        engine: Engine,
        model: str,
        requests: list[GenerationRequest],
        jobs: list[Job],
        claim: Claim,
        pulse: _Heartbeat,
    ) -> list[np.ndarray | None] | None:
        """Frames per job (None where it failed); None if the batch was abandoned."""
        started = time.perf_counter()
        try:
            frames: list[np.ndarray | None] = list(engine.generate(requests, pulse.progress))
            if len(frames) != len(requests):
                raise ValueError(f"the engine returned {len(frames)} videos for {len(requests)}")
        except Abandon:
            self._abandon(claim)
            return None
        except Exception as error:
            if len(requests) == 1:
                log.exception("generation failed", extra={"video_id": jobs[0].id})
                self._fail(claim, jobs[0], "generation_failed", f"Generation failed: {error}")
                return None
            # One bad request must not sink the others: run each alone.
            log.warning(
                "batch failed, retrying one by one", extra={"model": model, "error": str(error)}
            )
            frames = []
            for job, request in zip(jobs, requests, strict=True):
                try:
                    frames.append(engine.generate([request], pulse.progress)[0])
                except Abandon:
                    self._abandon(claim)
                    return None
                except Exception as single:
                    log.exception("generation failed", extra={"video_id": job.id})
                    self._fail(claim, job, "generation_failed", f"Generation failed: {single}")
                    frames.append(None)
        if self.metrics is not None:
            self.metrics.generation_seconds.labels(model).observe(time.perf_counter() - started)
            self.metrics.batch_size.labels(model).observe(len(requests))
        return frames

    def _abandon(self, claim: Claim) -> None:
        if self.stop_event.is_set():
            self.queue.release(claim)
            log.info(
                "batch released for another worker (shutting down)", extra={"videos": claim.ids}
            )
        else:
            log.info("batch abandoned: every job was deleted", extra={"videos": claim.ids})

    def _store(
        self, claim: Claim, job: Job, request: GenerationRequest, frames: np.ndarray
    ) -> None:
        from vidora.media import encode_mp4, spritesheet_jpeg, thumbnail_webp

        try:
            frames = _check_frames(frames, request)
            if request.extend_from is not None:
                frames = np.concatenate([request.extend_from, frames])
            files = {
                "video": encode_mp4(frames, fps=FPS),
                "thumbnail": thumbnail_webp(frames),
                "spritesheet": spritesheet_jpeg(frames),
            }
            self.storage.write_outputs(job.id, claim.token, files)
        except Exception as error:
            log.exception("storing the video failed", extra={"video_id": job.id})
            self.storage.discard_attempt(job.id, claim.token)
            self._fail(claim, job, "generation_failed", f"The video could not be stored: {error}")
            return
        if self.queue.complete(claim, job):
            self._count("completed")
            log.info("video completed", extra={"video_id": job.id, "frames": len(frames)})
        else:  # deleted meanwhile, or our lease ended and another worker took it
            self.storage.discard_attempt(job.id, claim.token)
            log.info("result discarded: the claim was lost", extra={"video_id": job.id})

    def _fail(self, claim: Claim, job: Job, code: str, message: str) -> None:
        if self.queue.fail(claim, job, code, message):
            self._count("failed")

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.jobs_finished.labels(outcome).inc()

    def _register(self) -> None:
        """Record that this worker is alive (shown by /healthz), at most every few seconds."""
        now = time.time()
        if now - self._last_seen < 5:
            return
        with self.queue.db.write() as conn:
            updated = conn.execute(
                update(workers).where(workers.c.id == self.id).values(last_seen=now)
            ).rowcount
            if not updated:
                conn.execute(
                    insert(workers).values(
                        id=self.id,
                        host=socket.gethostname(),
                        pid=os.getpid(),
                        started_at=now,
                        last_seen=now,
                    )
                )
        self._last_seen = now


class _Heartbeat:
    """Renews a claim's lease and writes progress while the engine runs."""

    def __init__(
        self,
        queue: JobQueue,
        claim: Claim,
        interval: float,
        stopping: threading.Event,
        alive: Callable[[], None],
    ) -> None:
        self.queue = queue
        self.alive = alive  # the worker's own "still here" record, for /healthz
        self.claim = claim
        self.interval = min(interval, 1.0)  # progress should move at least once a second
        self.lease_interval = interval
        self.stopping = stopping
        self.fraction = 0.0
        self.cancelled = False
        self._written: int | None = 0
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{claim.token[:6]}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def progress(self, fraction: float) -> None:
        """The engine's callback: remember progress; stop it if there is no reason to go on."""
        self.fraction = min(max(float(fraction), 0.0), 1.0)
        if self.cancelled or self.stopping.is_set():
            raise Abandon()

    def _run(self) -> None:
        last_beat = time.monotonic()
        while not self._done.wait(self.interval):
            percent = min(99, int(self.fraction * 100))
            if percent == self._written and time.monotonic() - last_beat < self.lease_interval:
                continue
            try:
                alive = self.queue.heartbeat(self.claim, progress=percent)
            except Exception:
                log.warning("heartbeat failed", exc_info=True)
                continue
            self._written = percent
            last_beat = time.monotonic()
            self.alive()
            if not alive:
                self.cancelled = True


def _check_frames(frames: Any, request: GenerationRequest) -> np.ndarray:
    """Hold engines to their contract, so a bad one fails its job with a message."""
    width, height = (int(part) for part in request.size.split("x"))
    array = np.asarray(frames)
    expected = (request.num_frames, height, width, 3)
    if array.dtype != np.uint8 or array.shape != expected:
        raise ValueError(
            f"the engine returned {array.dtype} {array.shape}, expected uint8 {expected}"
        )
    return array


class Periodic:
    """Runs `task` every `interval` seconds in a daemon thread until stopped."""

    def __init__(self, name: str, interval: float, task: Callable[[], Any]) -> None:
        self.name = name
        self.interval = interval
        self.task = task
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Periodic:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.task()
            except Exception:
                log.exception("%s failed", self.name)
                busy = False
            if not busy:
                self._stop.wait(self.interval)


def sweep_expired(queue: JobQueue, storage: Storage) -> int:
    """The janitor: delete expired videos' files, then mark them expired (retried if cut off)."""
    ids = queue.due_for_expiry()
    for video_id in ids:
        storage.delete_outputs(video_id)
    count = queue.mark_expired(ids)
    if count:
        log.info("videos expired", extra={"count": count})
    return count
