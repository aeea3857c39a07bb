"""Operations: health, Prometheus metrics, batching, structured logs, and expiry."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from harness import Deployment
from prometheus_client.parser import text_string_to_metric_families

from vidora.server.protocol import CreateVideoRequest
from vidora.weights import BUILTIN_MODEL

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, list[str]]]:
    """Eight same-size jobs queued before the server starts (so they batch), then a server
    whose videos expire two seconds after completion."""
    deployment = Deployment(tmp_path_factory.mktemp("ops"))
    services = deployment.services()
    queued = [
        services.videos.create(None, CreateVideoRequest(prompt=f"batch {i}", size="96x64"), None).id
        for i in range(8)
    ]
    services.db.dispose()
    deployment.server("--batch-size", "4", "--no-auth", env={"VIDORA_VIDEO_TTL_SECONDS": "2"})
    try:
        yield deployment, queued
    finally:
        deployment.close()


def samples(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics").text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}"] = sample.value
    return found


def wait_completed(client: openai.OpenAI, ids: list[str]) -> None:
    for video_id in ids:
        assert client.videos.poll(video_id).status == "completed"


def test_health_reports_the_queue_and_live_workers(ops: tuple[Deployment, list[str]]) -> None:
    deployment, _ = ops
    health = httpx.get(f"{deployment.procs[0].url}/healthz")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["workers"] == 1 and body["queue_depth"] >= 0


def test_queued_compatible_jobs_run_in_batches_and_metrics_say_so(
    ops: tuple[Deployment, list[str]],
) -> None:
    deployment, queued = ops
    proc = deployment.procs[0]
    client = openai.OpenAI(base_url=proc.base_url, api_key="unused", max_retries=0)
    wait_completed(client, queued)
    found = samples(proc.url)
    model = f"model={BUILTIN_MODEL}"
    assert found[f"vidora_batch_size_count{{{model}}}"] == 2  # 8 jobs, batches of 4
    assert found[f"vidora_batch_size_sum{{{model}}}"] == 8
    assert found[f"vidora_generation_seconds_count{{{model}}}"] == 2
    assert found["vidora_queue_depth{}"] == 0
    assert found["vidora_jobs{status=completed}"] + found["vidora_jobs{status=expired}"] >= 8
    assert found["vidora_jobs_finished_total{outcome=completed}"] >= 8
    assert any(k.startswith("vidora_http_requests_total{") for k in found)


def test_logs_are_json_lines_that_follow_a_video(ops: tuple[Deployment, list[str]]) -> None:
    deployment, _ = ops
    proc = deployment.procs[0]
    client = openai.OpenAI(base_url=proc.base_url, api_key="unused", max_retries=0)
    video = client.videos.create_and_poll(prompt="follow me")
    entries = [
        json.loads(line) for line in proc.log_path.read_text().splitlines() if line.startswith("{")
    ]
    about = [e for e in entries if e.get("video_id") == video.id]
    messages = {e["msg"] for e in about}
    assert {"video queued", "job claimed", "video completed", "request"} <= messages
    assert all({"ts", "level", "logger", "msg"} <= set(e) for e in entries)


def test_expired_videos_lose_their_files_and_answer_404_saying_so(
    ops: tuple[Deployment, list[str]],
) -> None:
    deployment, _ = ops
    proc = deployment.procs[0]
    client = openai.OpenAI(base_url=proc.base_url, api_key="unused", max_retries=0)
    video = client.videos.create_and_poll(prompt="ephemeral")
    assert video.expires_at is not None and video.expires_at - video.completed_at == 2
    files = deployment.data_dir / "files" / video.id
    deadline = time.monotonic() + 20
    while files.exists():
        assert time.monotonic() < deadline, "the janitor did not run"
        time.sleep(0.2)
    for call in (
        lambda: client.videos.retrieve(video.id),
        lambda: client.videos.download_content(video.id),
    ):
        with pytest.raises(openai.NotFoundError) as error:
            call()
        assert "expired" in error.value.message and error.value.code == "video_expired"
    assert video.id not in [v.id for v in client.videos.list(limit=100)]
