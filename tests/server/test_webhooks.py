"""Webhooks delivered to a local receiver, verified with the official client's unwrap()."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest
from harness import Deployment
from sqlalchemy import select
from typer.testing import CliRunner

from vidora.cli import app
from vidora.server.db import webhook_attempts, webhook_deliveries, webhook_endpoints
from vidora.server.webhooks import generate_secret

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class Receiver:
    """An HTTP endpoint that records deliveries and fails the first `failures` of each message."""

    def __init__(self, failures: int = 0) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes, int]] = []
        receiver = self
        tries: Counter[str] = Counter()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["content-length"]))
                message = self.headers["webhook-id"]
                tries[message] += 1
                status = 500 if tries[message] <= failures else 204
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.deliveries.append((headers, body, status))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(
        self, video_id: str, event_type: str, timeout: float = 30
    ) -> list[tuple[dict[str, str], bytes, int]]:
        """Every delivery of that event, once one succeeded."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            matching = [
                d
                for d in self.deliveries
                if json.loads(d[1])["data"]["id"] == video_id
                and json.loads(d[1])["type"] == event_type
            ]
            if any(status < 300 for _, _, status in matching):
                return matching
            time.sleep(0.05)
        raise AssertionError(f"no {event_type} for {video_id}: {self.deliveries}")

    def close(self) -> None:
        self.server.shutdown()


class Setup:
    def __init__(self, deployment: Deployment) -> None:
        self.server_hook = Receiver(failures=2)
        self.key_hook = Receiver()
        self.server_secret = generate_secret()
        self.deployment = deployment
        self.alice = deployment.key("alice")
        self.bob = deployment.key("bob")
        added = CliRunner().invoke(
            app,
            [
                "webhooks",
                "add",
                self.key_hook.url,
                "--key",
                "alice",
                "--data-dir",
                str(deployment.data_dir),
            ],
        )
        assert added.exit_code == 0, added.output
        self.key_secret = added.stdout.strip().splitlines()[-1]
        assert self.key_secret.startswith("whsec_")
        self.proc = deployment.server(
            env={
                "VIDORA_WEBHOOK_URL": self.server_hook.url,
                "VIDORA_WEBHOOK_SECRET": self.server_secret,
            }
        )

    def client(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.proc.base_url, api_key=key, max_retries=0)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    deployment = Deployment(tmp_path_factory.mktemp("webhooks"))
    result = Setup(deployment)
    try:
        yield result
    finally:
        deployment.close()
        result.server_hook.close()
        result.key_hook.close()


def test_completed_video_is_announced_signed_and_unwrapped_by_the_sdk(setup: Setup) -> None:
    client = setup.client(setup.alice)
    video = client.videos.create_and_poll(prompt="announce me")
    [(headers, body, status)] = setup.key_hook.received(video.id, "video.completed")
    assert status == 204
    event = client.webhooks.unwrap(body, headers, secret=setup.key_secret)
    assert (event.type, event.data.id, event.object) == ("video.completed", video.id, "event")
    assert event.id.startswith("evt_") and event.created_at >= video.created_at
    with pytest.raises(openai.InvalidWebhookSignatureError):
        client.webhooks.unwrap(body, headers, secret=setup.server_secret)


def test_failed_video_is_announced(setup: Setup) -> None:
    client = setup.client(setup.alice)
    video = client.videos.create_and_poll(prompt="[fail] loudly")
    [(headers, body, _)] = setup.key_hook.received(video.id, "video.failed")
    event = client.webhooks.unwrap(body, headers, secret=setup.key_secret)
    assert (event.type, event.data.id) == ("video.failed", video.id)


def test_a_key_endpoint_hears_only_its_key_and_the_server_endpoint_hears_all(setup: Setup) -> None:
    bobs = setup.client(setup.bob).videos.create_and_poll(prompt="bob's")
    deliveries = setup.server_hook.received(bobs.id, "video.completed")
    headers, body, _ = deliveries[-1]
    event = setup.client(setup.bob).webhooks.unwrap(body, headers, secret=setup.server_secret)
    assert event.data.id == bobs.id
    time.sleep(0.3)
    assert all(json.loads(b)["data"]["id"] != bobs.id for _, b, _ in setup.key_hook.deliveries)


def test_failed_deliveries_are_retried_with_backoff_and_logged(setup: Setup) -> None:
    # The server-wide receiver answers 500 to the first two tries of each message (Setup).
    first = setup.server_hook.deliveries[0]
    video_id = json.loads(first[1])["data"]["id"]
    attempts = setup.server_hook.received(video_id, json.loads(first[1])["type"])
    assert [status for _, _, status in attempts][:3] == [500, 500, 204]
    assert len({h["webhook-id"] for h, _, _ in attempts}) == 1  # one message, retried
    db = setup.deployment.database()
    with db.read() as conn:
        delivery = conn.execute(
            select(webhook_deliveries)
            .join(webhook_endpoints, webhook_endpoints.c.id == webhook_deliveries.c.endpoint_id)
            .where(
                webhook_deliveries.c.event_id == attempts[0][0]["webhook-id"],
                webhook_endpoints.c.url == setup.server_hook.url,
            )
        ).one()
        logged = conn.execute(
            select(webhook_attempts).where(webhook_attempts.c.delivery_seq == delivery.seq)
        ).all()
    db.dispose()
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    assert [row.status_code for row in logged] == [500, 500, 204]
    log_lines = [
        json.loads(line)
        for line in setup.proc.log_path.read_text().splitlines()
        if "webhook attempt" in line
    ]
    assert {line["video_id"] for line in log_lines} >= {video_id}


def test_backoff_doubles_up_to_an_hour() -> None:
    from vidora.server.webhooks import WebhookDispatcher

    dispatcher = WebhookDispatcher.__new__(WebhookDispatcher)
    dispatcher.backoff_seconds = 5.0
    assert [dispatcher.backoff(n) for n in (1, 2, 3, 4)] == [5.0, 10.0, 20.0, 40.0]
    assert dispatcher.backoff(20) == 3600.0
