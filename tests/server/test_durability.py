"""Durability with real processes, on SQLite and on PostgreSQL: no job lost, none doubled,
whatever happens to the workers.

Leases are 2 s here (FAST_ENV), so a killed worker's job is taken over within seconds.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator

import openai
import pytest
from harness import Deployment, PostgresCluster
from sqlalchemy import select

from vidora.server.db import videos
from vidora.server.jobs import Job

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(params=["sqlite", "postgres"])
def deployment_on(request: pytest.FixtureRequest, deployment: Deployment) -> Iterator[Deployment]:
    if request.param == "postgres":
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        deployment.db_url = cluster.new_database()
    yield deployment


def client_for(deployment: Deployment, base_url: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=base_url, api_key=deployment.key(f"k{time.monotonic_ns()}"), max_retries=0
    )


def wait_all(client: openai.OpenAI, ids: list[str], timeout: float = 90) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    statuses: dict[str, str] = {}
    while time.monotonic() < deadline:
        statuses = {video_id: client.videos.retrieve(video_id).status for video_id in ids}
        if all(status in ("completed", "failed") for status in statuses.values()):
            return statuses
        time.sleep(0.2)
    raise AssertionError(f"not finished in {timeout} s: {statuses}")


def completions(deployment: Deployment) -> Counter[str]:
    """How many times each video was reported completed, across every process's log."""
    counts: Counter[str] = Counter()
    for proc in deployment.procs:
        for line in proc.log_path.read_text().splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("msg") == "video completed":
                    counts[entry["video_id"]] += 1
    return counts


def rows(deployment: Deployment, ids: list[str]) -> dict[str, Job]:
    """The job rows as the database holds them, whoever owns them."""
    db = deployment.database()
    try:
        with db.read() as conn:
            found = conn.execute(select(videos).where(videos.c.id.in_(ids))).all()
        return {row.id: Job.from_row(row) for row in found}
    finally:
        db.dispose()


def test_two_workers_on_one_queue_finish_20_jobs_none_lost_or_doubled(
    deployment_on: Deployment,
) -> None:
    deployment = deployment_on
    deployment.step_seconds = 0.05
    api = deployment.server("--no-worker")
    for _ in range(2):
        deployment.worker("--batch-size", "3")
    client = client_for(deployment, api.base_url)
    ids = [
        client.videos.create(prompt=f"job {i}", size=["64x64", "96x64"][i % 2]).id
        for i in range(20)
    ]
    assert set(wait_all(client, ids).values()) == {"completed"}
    assert completions(deployment) == Counter({video_id: 1 for video_id in ids})
    found = rows(deployment, ids)
    assert all(row.attempts == 1 for row in found.values())
    for video_id, row in found.items():
        folders = list((deployment.data_dir / "files" / video_id).iterdir())
        assert [folder.name for folder in folders] == [row.output_dir]


def test_a_killed_worker_leaves_its_video_to_the_other(deployment_on: Deployment) -> None:
    deployment = deployment_on
    deployment.step_seconds = 0.4  # 1.6 s per batch: long enough to be killed mid-job
    api = deployment.server("--no-worker")
    doomed = deployment.worker()
    client = client_for(deployment, api.base_url)
    video = client.videos.create(prompt="survives its worker")
    deadline = time.monotonic() + 30
    while client.videos.retrieve(video.id).status != "in_progress":
        assert time.monotonic() < deadline, deployment.logs()
        time.sleep(0.05)
    doomed.kill()
    deployment.worker()
    done = client.videos.poll(video.id)
    assert done.status == "completed", done.error
    assert rows(deployment, [video.id])[video.id].attempts == 2
    assert completions(deployment) == Counter({video.id: 1})
    assert len(client.videos.download_content(video.id).content) > 0


def test_a_restarted_server_finishes_every_queued_job(deployment_on: Deployment) -> None:
    deployment = deployment_on
    deployment.step_seconds = 0.2
    first = deployment.server("--batch-size", "2")
    client = client_for(deployment, first.base_url)
    ids = [client.videos.create(prompt=f"before restart {i}", seconds="8").id for i in range(6)]
    first.stop()  # SIGTERM: a batch in progress is handed back
    statuses = [row.status for row in rows(deployment, ids).values()]
    assert "queued" in statuses and "in_progress" not in statuses
    second = deployment.server("--batch-size", "2")
    client = openai.OpenAI(base_url=second.base_url, api_key=client.api_key, max_retries=0)
    assert set(wait_all(client, ids).values()) == {"completed"}
    assert completions(deployment) == Counter({video_id: 1 for video_id in ids})
