"""The worker in this process: cancellation stops the engine, one bad job does not sink its
batch, a clean stop hands work back, and engines are held to their contract."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from vidora.server.jobs import COMPLETED, FAILED, QUEUED
from vidora.server.protocol import CreateVideoRequest
from vidora.server.services import Services, build_services
from vidora.server.settings import Settings
from vidora.server.worker import Worker


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    models = tmp_path / "models.yaml"
    models.write_text(
        "models:\n  - id: m\n    engine: fake_engine:build\n"
        "    options: {step_seconds: 0.1, steps: 50}\n"
        "    sizes: ['64x64']\n    seconds: [4]\n"
    )
    settings = Settings(data_dir=tmp_path, models_file=models, lease_seconds=1, batch_size=4)
    services = build_services(settings)
    yield services
    services.db.dispose()


def queue(services: Services, prompt: str) -> str:
    return services.videos.create(None, CreateVideoRequest(prompt=prompt), None).id


def worker(services: Services) -> Worker:
    return Worker(services.settings, services.registry, services.queue, services.storage)


def status(services: Services, video_id: str) -> str:
    job = services.queue.get(video_id, None)
    return job.status if job else "deleted"


def test_deleting_every_job_of_a_batch_stops_the_engine(services: Services, tmp_path: Path) -> None:
    video_id = queue(services, "soon deleted")
    w = worker(services)
    claim = services.queue.claim(w.id, 1)
    assert claim is not None
    thread = threading.Thread(target=w.process, args=(claim,))
    thread.start()
    while (services.queue.get(video_id, None) or claim.jobs[0]).progress == 0:
        time.sleep(0.05)  # the heartbeat has written progress: the engine is running
    services.videos.delete(None, video_id)
    thread.join(60)
    engine = w.engines["m"]
    assert engine.steps_run < engine.steps  # it was stopped, not run to the end
    assert not (tmp_path / "files" / video_id).exists()


def test_a_failing_job_does_not_sink_its_batch(services: Services) -> None:
    services.registry.models["m"].options.update(step_seconds=0.0, steps=1)
    ids = [queue(services, "fine"), queue(services, "[fail] bad"), queue(services, "also fine")]
    w = worker(services)
    assert w.run_once()
    assert [status(services, i) for i in ids] == [COMPLETED, FAILED, COMPLETED]
    assert w.engines["m"].calls == [3, 1, 1, 1]  # the batch, then each job alone
    failed = services.queue.get(ids[1], None)
    assert failed is not None and failed.error_code == "generation_failed"


def test_a_stopping_worker_hands_its_batch_back(services: Services) -> None:
    video_id = queue(services, "interrupted")
    w = worker(services)
    claim = services.queue.claim(w.id, 1)
    assert claim is not None
    thread = threading.Thread(target=w.process, args=(claim,))
    thread.start()
    time.sleep(0.3)
    w.stop()
    thread.join(60)
    job = services.queue.get(video_id, None)
    assert job is not None and job.status == QUEUED and job.attempts == 0


class WrongShape:
    def generate(self, requests: list, progress: object) -> list[np.ndarray]:
        return [np.zeros((3, 8, 8, 3), np.uint8) for _ in requests]


def test_an_engine_breaking_its_contract_fails_the_job_with_a_message(services: Services) -> None:
    video_id = queue(services, "any")
    w = worker(services)
    w.engines["m"] = WrongShape()  # type: ignore[assignment]
    assert w.run_once()
    job = services.queue.get(video_id, None)
    assert job is not None and job.status == FAILED
    assert "expected uint8 (32, 64, 64, 3)" in (job.error_message or "")
