"""Prometheus metrics: queue depth and jobs by status (read from the database when scraped),
generation time and batch sizes (observed by the worker), HTTP and webhook counters.

Each process owns one registry (no module globals), so an API server with its embedded
worker exposes everything on `/metrics`, and a standalone worker on `--metrics-port`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vidora.server.jobs import COMPLETED, EXPIRED, FAILED, IN_PROGRESS, QUEUED, JobQueue

log = logging.getLogger("vidora.server")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _QueueCollector(Collector):
    """Counts rows by status at scrape time: the truth across every process."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    def collect(self) -> Iterator[Metric]:
        try:
            counts = self.queue.counts_by_status()
        except Exception:  # a scrape must not fail because the database blinked
            log.warning("metrics: cannot count jobs", exc_info=True)
            return
        depth = GaugeMetricFamily("vidora_queue_depth", "Jobs waiting for a worker.")
        depth.add_metric([], counts.get(QUEUED, 0))
        yield depth
        jobs = GaugeMetricFamily(
            "vidora_jobs", "Jobs in the database by status.", labels=["status"]
        )
        for status in (QUEUED, IN_PROGRESS, COMPLETED, FAILED, EXPIRED):
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs


class Metrics:
    """The metrics one process records."""

    def __init__(self, queue: JobQueue | None = None) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "vidora_http_requests",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "vidora_http_request_seconds",
            "HTTP request latency.",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.generation_seconds = Histogram(
            "vidora_generation_seconds",
            "Wall time of one engine call (a batch).",
            ["model"],
            registry=self.registry,
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
        )
        self.batch_size = Histogram(
            "vidora_batch_size",
            "Jobs generated together in one engine call.",
            ["model"],
            registry=self.registry,
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32),
        )
        self.jobs_finished = Counter(
            "vidora_jobs_finished",
            "Jobs this process finished, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.webhook_attempts = Counter(
            "vidora_webhook_attempts",
            "Webhook delivery attempts by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        if queue is not None:
            self.registry.register(_QueueCollector(queue))

    def render(self) -> bytes:
        return generate_latest(self.registry)
