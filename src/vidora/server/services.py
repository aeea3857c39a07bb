"""Wiring: build every service of one process from its Settings, start and stop its threads.

Both process kinds use it: `vidora serve` (API, plus the embedded worker unless told
otherwise) and `vidora worker` (worker only). Background work in each process: the
worker loop, the janitor that expires old videos, and the webhook dispatcher.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from vidora.server.db import Database
from vidora.server.jobs import JobQueue
from vidora.server.keys import KeyStore
from vidora.server.limits import Limiter
from vidora.server.metrics import Metrics
from vidora.server.registry import Registry
from vidora.server.settings import Settings
from vidora.server.storage import Storage
from vidora.server.videos import VideoService
from vidora.server.webhooks import WebhookDispatcher, WebhookEndpoints, WebhookOutbox
from vidora.server.worker import Periodic, Worker, sweep_expired

log = logging.getLogger("vidora.server")


@dataclass
class Services:
    settings: Settings
    registry: Registry
    db: Database
    queue: JobQueue
    storage: Storage
    keys: KeyStore
    limiter: Limiter
    videos: VideoService
    webhooks: WebhookEndpoints
    dispatcher: WebhookDispatcher
    metrics: Metrics
    worker: Worker | None = None
    _threads: list[Periodic] = field(default_factory=list)
    _worker_thread: Periodic | None = None

    def start(self, *, worker: bool) -> None:
        """Start the background threads; `worker` adds a generation loop to this process."""
        settings = self.settings
        if settings.webhook_url and settings.webhook_secret:
            self.webhooks.ensure_server_endpoint(settings.webhook_url, settings.webhook_secret)
        self._threads = [
            Periodic(
                "janitor",
                settings.janitor_interval,
                lambda: sweep_expired(self.queue, self.storage),
            ).start(),
            Periodic(
                "webhooks", min(1.0, settings.poll_interval), self.dispatcher.run_once
            ).start(),
        ]
        if worker:
            self.worker = Worker(
                settings, self.registry, self.queue, self.storage, metrics=self.metrics
            )
            self.videos.wake = self.worker.wake
            self._worker_thread = Periodic(
                "worker", settings.poll_interval, self.worker.run
            ).start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop threads; a batch in progress is released for another worker."""
        if self.worker is not None:
            self.worker.stop()
        if self._worker_thread is not None:
            self._worker_thread.stop(timeout)
        for thread in self._threads:
            thread.stop(timeout)
        self.dispatcher.close()
        self.db.dispose()


def build_services(settings: Settings) -> Services:
    """Every service for one process; creates the schema and data dir if missing."""
    registry = Registry.load(settings.models_file)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.database_url)
    db.create_schema()
    queue = JobQueue(
        db,
        lease_seconds=settings.lease_seconds,
        max_attempts=settings.max_attempts,
        ttl_seconds=settings.video_ttl_seconds,
        outbox=WebhookOutbox(),
    )
    storage = Storage(settings.data_dir)
    limiter = Limiter(settings)
    metrics = Metrics(queue)
    dispatcher = WebhookDispatcher(
        db,
        max_attempts=settings.webhook_max_attempts,
        backoff_seconds=settings.webhook_backoff_seconds,
        timeout_seconds=settings.webhook_timeout_seconds,
        on_attempt=lambda outcome: metrics.webhook_attempts.labels(outcome).inc(),
    )
    return Services(
        settings=settings,
        registry=registry,
        db=db,
        queue=queue,
        storage=storage,
        keys=KeyStore(db),
        limiter=limiter,
        videos=VideoService(settings, registry, queue, storage, limiter),
        webhooks=WebhookEndpoints(db),
        dispatcher=dispatcher,
        metrics=metrics,
    )


def run_worker(settings: Settings, *, metrics_port: int | None = None) -> None:
    """`vidora worker`: generate until SIGTERM or SIGINT, then give back an unfinished batch."""
    import signal
    import threading

    from prometheus_client import start_http_server

    from vidora.server.logs import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    services = build_services(settings)
    if metrics_port is not None:
        start_http_server(metrics_port, registry=services.metrics.registry)
    stopping = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log.info("worker stopping", extra={"signal": signal.Signals(signum).name})
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    services.start(worker=True)
    try:
        while not stopping.wait(1.0):
            pass
    finally:
        services.stop()
