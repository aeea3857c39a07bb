"""The drop-in promise: the official `openai` client, unchanged, against a real server process.

Every verb of the Videos API is exercised: create (JSON and multipart, with a file and with
a data URL), create_and_poll, retrieve, list with paging, delete, all three content
variants, remix, edit, extend, and models.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from fake_engine import colour_of
from harness import Deployment
from PIL import Image

from vidora.media import read_mp4
from vidora.weights import BUILTIN_MODEL

pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning"
)  # the SDK marks Sora deprecated


class Server:
    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.proc = deployment.server()
        self.alice = deployment.key("alice")
        self.bob = deployment.key("bob")

    def client(self, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.proc.base_url, api_key=key or self.alice, max_retries=0)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    deployment = Deployment(tmp_path_factory.mktemp("server"))
    try:
        yield Server(deployment)
    finally:
        deployment.close()


def png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def frames_of(client: openai.OpenAI, video_id: str) -> np.ndarray:
    frames, fps = read_mp4(client.videos.download_content(video_id).content)
    assert fps == 8
    return frames


def by_reference(video_id: str) -> dict[str, Any]:
    """`video={"id": ...}` as this SDK can send it.

    openai 3.x's edit() and extend() treat `video` as a file path and refuse a dict; the
    same multipart field (`video[id]`) goes through extra_body.
    """
    return {"video": openai.omit, "extra_body": {"video": {"id": video_id}}}


def close(a: np.ndarray, b: np.ndarray | tuple[int, ...], tolerance: float = 12) -> bool:
    return float(np.abs(a.astype(float) - np.asarray(b, dtype=float)).mean()) < tolerance


def test_create_and_poll_then_download_every_variant(server: Server) -> None:
    client = server.client()
    video = client.videos.create_and_poll(
        prompt="a red circle moving right", model="sora-2", size="96x64"
    )
    assert video.status == "completed", video.error
    assert (video.model, video.size, video.seconds, video.progress) == ("sora-2", "96x64", "4", 100)
    assert video.completed_at is not None and video.expires_at is not None
    assert video.expires_at > video.completed_at >= video.created_at

    frames = frames_of(client, video.id)
    assert frames.shape == (32, 64, 96, 3)
    side = 64 // 4  # the fake engine's square, prompt-coloured, at x = 2t
    square = frames[5, 32 - side // 2 + 2 : 32 + side // 2 - 2, 12 : 10 + side - 2]
    assert close(square, tuple(colour_of("a red circle moving right")), tolerance=20)

    thumbnail = client.videos.download_content(video.id, variant="thumbnail")
    spritesheet = client.videos.download_content(video.id, variant="spritesheet")
    assert Image.open(io.BytesIO(thumbnail.content)).format == "WEBP"
    assert Image.open(io.BytesIO(spritesheet.content)).format == "JPEG"
    assert thumbnail.response.headers["content-type"] == "image/webp"
    assert spritesheet.response.headers["content-type"] == "image/jpeg"


def test_create_returns_the_poll_hint_and_retrieve_follows_progress(server: Server) -> None:
    client = server.client()
    raw = client.videos.with_raw_response.create(prompt="a blue square", seconds="8", size="64x96")
    assert raw.headers["openai-poll-after-ms"] == "100"
    video = raw.parse()
    assert video.status in ("queued", "in_progress") and video.seconds == "8"
    done = client.videos.poll(video.id)
    assert done.status == "completed"
    assert client.videos.retrieve(video.id).model_dump() == done.model_dump()
    assert frames_of(client, video.id).shape == (64, 96, 64, 3)


@pytest.mark.parametrize("how", ["file", "data_url_multipart", "data_url_json"])
def test_input_reference_becomes_the_fitted_first_frame(server: Server, how: str) -> None:
    client = server.client()
    blue = (30, 60, 220)
    image = png(120, 50, blue)  # another aspect ratio: centre-cropped and scaled to 64x64
    data_url = "data:image/png;base64," + base64.b64encode(image).decode()
    if how == "file":
        video = client.videos.create(
            prompt="a cat", input_reference=("ref.png", image, "image/png")
        )
    elif how == "data_url_multipart":
        # This SDK's create() refuses a dict for input_reference (it expects a file there),
        # but sends the same multipart field, input_reference[image_url], via extra_body.
        video = client.videos.create(
            prompt="a cat", extra_body={"input_reference": {"image_url": data_url}}
        )
    else:
        response = httpx.post(
            f"{server.proc.base_url}/videos",
            json={"prompt": "a cat", "seconds": 4, "input_reference": {"image_url": data_url}},
            headers={"Authorization": f"Bearer {server.alice}"},
        )
        assert response.status_code == 200, response.text
        video = client.videos.retrieve(response.json()["id"])
    assert client.videos.poll(video.id).status == "completed"
    frames = frames_of(client, video.id)
    assert close(frames[0], blue)
    assert not close(frames[1, 28:36, 4:16], blue)  # ...and the engine drew on it after


def test_list_pages_through_every_video_in_order(server: Server) -> None:
    client = server.client(server.deployment.key("lister"))
    ids = [client.videos.create(prompt=f"video {i}").id for i in range(5)]
    first = client.videos.list(limit=2)
    assert [v.id for v in first.data] == ids[::-1][:2]
    assert first.has_more is True
    assert [v.id for v in client.videos.list(limit=2)] == ids[::-1]  # auto-pagination
    assert [v.id for v in client.videos.list(limit=3, order="asc")] == ids
    last = client.videos.list(limit=10, after=ids[1], order="asc")
    assert [v.id for v in last.data] == ids[2:] and last.has_more is False
    raw = httpx.get(
        f"{server.proc.base_url}/videos",
        params={"limit": 2},
        headers={"Authorization": f"Bearer {client.api_key}"},
    ).json()
    assert raw["object"] == "list" and raw["first_id"] == ids[4] and raw["last_id"] == ids[3]


def test_delete_removes_the_video_and_its_files(server: Server) -> None:
    client = server.client()
    video = client.videos.create_and_poll(prompt="short lived")
    files = server.deployment.data_dir / "files" / video.id
    assert files.is_dir()
    deleted = client.videos.delete(video.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (video.id, True, "video.deleted")
    assert not files.exists()
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(video.id)
    with pytest.raises(openai.NotFoundError):
        client.videos.download_content(video.id)
    with pytest.raises(openai.NotFoundError):
        client.videos.delete(video.id)


def test_remix_keeps_seed_and_settings_with_the_new_prompt(server: Server) -> None:
    client = server.client()
    source = client.videos.create_and_poll(prompt="a green triangle", size="64x96", seconds="8")
    remix = client.videos.remix(source.id, prompt="a purple triangle")
    assert remix.remixed_from_video_id == source.id
    assert (remix.size, remix.seconds, remix.prompt) == ("64x96", "8", "a purple triangle")
    assert remix.model_extra["seed"] == source.model_extra["seed"]
    assert client.videos.poll(remix.id).status == "completed"
    before, after = frames_of(client, source.id), frames_of(client, remix.id)
    assert close(before[0, :8, :8], after[0, :8, :8])  # same seed: same background
    assert not close(before[4, 44:52, 10:14], after[4, 44:52, 10:14])  # new prompt: new colour


def test_edit_starts_from_the_source_first_frame(server: Server, tmp_path: Path) -> None:
    client = server.client()
    source = client.videos.create_and_poll(
        prompt="orange", input_reference=("r.png", png(64, 64, (240, 140, 30)), "image/png")
    )
    by_id = client.videos.edit(prompt="now in cyan", **by_reference(source.id))
    assert (by_id.prompt, by_id.size, by_id.seconds) == ("now in cyan", "64x64", "4")
    mp4 = client.videos.download_content(source.id).content
    by_file = client.videos.edit(prompt="now in white", video=("clip.mp4", mp4, "video/mp4"))
    as_json = httpx.post(
        f"{server.proc.base_url}/videos/edits",
        json={"prompt": "now in blue", "video": {"id": source.id}},
        headers={"Authorization": f"Bearer {server.alice}"},
    )
    assert as_json.status_code == 200, as_json.text
    by_json = client.videos.retrieve(as_json.json()["id"])
    for video in (by_id, by_file, by_json):
        assert client.videos.poll(video.id).status == "completed"
        assert close(frames_of(client, video.id)[0], (240, 140, 30))


def test_extend_continues_the_source_and_reports_the_total(server: Server) -> None:
    client = server.client()
    source = client.videos.create_and_poll(prompt="a white circle", size="96x64")
    longer = client.videos.extend(prompt="keeps going", seconds="4", **by_reference(source.id))
    assert (longer.seconds, longer.size) == ("8", "96x64")
    assert client.videos.poll(longer.id).status == "completed"
    before, after = frames_of(client, source.id), frames_of(client, longer.id)
    assert after.shape == (64, 64, 96, 3)
    assert close(after[:32], before, tolerance=4)

    mp4 = client.videos.download_content(source.id).content
    uploaded = client.videos.extend(prompt="more", seconds="8", video=("in.mp4", mp4, "video/mp4"))
    assert uploaded.seconds == "12" and uploaded.size == "96x64"
    assert client.videos.poll(uploaded.id).status == "completed"
    assert frames_of(client, uploaded.id).shape == (96, 64, 96, 3)


def test_models_lists_the_model_and_its_aliases(server: Server) -> None:
    models = {m.id: m for m in server.client().models.list()}
    assert {BUILTIN_MODEL, "sora-2", "sora-2-pro"} <= set(models)
    assert models["sora-2"].model_extra["alias_of"] == BUILTIN_MODEL
    assert models[BUILTIN_MODEL].model_extra["sizes"] == ["64x64", "96x64", "64x96"]
    assert server.client().models.retrieve("sora-2").id == "sora-2"


def test_a_key_sees_only_its_own_videos(server: Server) -> None:
    alice, bob = server.client(), server.client(server.bob)
    video = alice.videos.create_and_poll(prompt="private")
    for call in (
        lambda: bob.videos.retrieve(video.id),
        lambda: bob.videos.download_content(video.id),
        lambda: bob.videos.delete(video.id),
        lambda: bob.videos.remix(video.id, prompt="mine now"),
        lambda: bob.videos.extend(prompt="x", seconds="4", **by_reference(video.id)),
        lambda: bob.videos.edit(prompt="x", **by_reference(video.id)),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert video.id not in [v.id for v in bob.videos.list()]
    assert alice.videos.retrieve(video.id).status == "completed"


def test_a_failed_generation_says_why(server: Server) -> None:
    client = server.client()
    video = client.videos.create_and_poll(prompt="please [fail]")
    assert video.status == "failed"
    assert video.error is not None and video.error.code == "generation_failed"
    assert "asked to fail" in video.error.message
    with pytest.raises(openai.ConflictError):
        client.videos.download_content(video.id)
