"""API keys from the CLI, revocation on the next request, and the three per-key limits."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from harness import Deployment
from sqlalchemy import select
from typer.testing import CliRunner, Result

from vidora.cli import app
from vidora.server.db import api_keys

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def vidora(*args: str) -> Result:
    """Run the CLI in this process (a subprocess costs seconds of imports each time)."""
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A server whose jobs take ~2 s, so they stay in flight while a test looks."""
    deployment = Deployment(tmp_path_factory.mktemp("limits"), step_seconds=0.5)
    deployment.server()
    try:
        yield deployment
    finally:
        deployment.close()


def client(deployment: Deployment, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=deployment.procs[0].base_url, api_key=key, max_retries=0)


def test_keys_are_printed_once_stored_hashed_and_revoked_from_the_next_request(
    slow: Deployment,
) -> None:
    created = vidora("keys", "create", "ci-bot", "--data-dir", str(slow.data_dir))
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("sk-vidora-") and " " not in key

    db = slow.database()
    with db.read() as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.name == "ci-bot")).one()
    db.dispose()
    assert key not in " ".join(str(value) for value in row) and len(row.key_hash) == 64

    listed = vidora("keys", "list", "--data-dir", str(slow.data_dir))
    assert "ci-bot" in listed.stdout and "active" in listed.stdout and key not in listed.stdout

    api = client(slow, key)
    assert api.models.list().data
    revoked = vidora("keys", "revoke", "ci-bot", "--data-dir", str(slow.data_dir))
    assert revoked.exit_code == 0, revoked.output
    with pytest.raises(openai.AuthenticationError) as error:
        api.models.list()
    assert error.value.code == "revoked_api_key"
    assert "revoked" in vidora("keys", "list", "--data-dir", str(slow.data_dir)).stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["keys", "create", "bad name!"], "letters, digits"),
        (["keys", "revoke", "nobody"], "no API key named 'nobody'"),
        (["keys", "create", "x", "--rpm", "-1"], "greater than or equal to 0"),
    ],
)
def test_key_commands_refuse_bad_input_without_a_traceback(
    slow: Deployment, args: list[str], says: str
) -> None:
    result = vidora(*args, "--data-dir", str(slow.data_dir))
    assert result.exit_code == 2  # a usage error, not a crash
    assert says in " ".join(result.output.split())  # rich wraps long messages
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_duplicate_key_name_is_refused(slow: Deployment) -> None:
    slow.key("taken")
    result = vidora("keys", "create", "taken", "--data-dir", str(slow.data_dir))
    assert result.exit_code == 2 and "already exists" in result.output


def test_requests_per_minute(slow: Deployment) -> None:
    key = slow.key("chatty", rpm_limit=3)
    api = client(slow, key)
    for _ in range(3):
        api.models.list()
    with pytest.raises(openai.RateLimitError) as error:
        api.models.list()
    assert error.value.code == "rate_limit_exceeded"
    assert 1 <= int(error.value.response.headers["retry-after"]) <= 60
    assert client(slow, slow.key("quiet", rpm_limit=3)).models.list().data  # others unaffected


def test_jobs_in_flight(slow: Deployment) -> None:
    api = client(slow, slow.key("busy", in_flight_limit=1))
    first = api.videos.create(prompt="takes a while")
    with pytest.raises(openai.RateLimitError) as error:
        api.videos.create(prompt="one too many")
    assert error.value.code == "too_many_jobs_in_flight"
    assert int(error.value.response.headers["retry-after"]) >= 1
    assert api.videos.poll(first.id).status == "completed"
    assert api.videos.create(prompt="room again").status == "queued"


def test_seconds_of_video_per_day(slow: Deployment) -> None:
    key = slow.key("frugal", seconds_per_day_limit=12)
    api = client(slow, key)
    first = api.videos.create(prompt="four", seconds="4")
    api.videos.create(prompt="eight", seconds="8")
    with pytest.raises(openai.RateLimitError) as error:
        api.videos.create(prompt="four more", seconds="4")
    assert error.value.code == "daily_seconds_exceeded"
    assert 86000 < int(error.value.response.headers["retry-after"]) <= 86400
    api.videos.delete(first.id)  # deleting does not give the seconds back
    raw = httpx.post(
        f"{slow.procs[0].base_url}/videos",
        json={"prompt": "again", "seconds": 4},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert raw.status_code == 429 and raw.json()["error"]["type"] == "rate_limit_error"
