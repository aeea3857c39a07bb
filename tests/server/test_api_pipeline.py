"""The real pipeline behind the server: a tiny random model through every generating verb.

The videos are meaningless (random weights), so the checks are about the plumbing: shapes,
durations, determinism of seed and settings, conditioning accepted, batches split right.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import openai
import pytest
from harness import TINY_ENGINE, Deployment
from PIL import Image

from vidora.media import read_mp4

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    deployment = Deployment(tmp_path_factory.mktemp("pipeline"), engine=TINY_ENGINE)
    proc = deployment.server("--batch-size", "4")
    try:
        yield openai.OpenAI(base_url=proc.base_url, api_key=deployment.key("k"), max_retries=0)
    finally:
        deployment.close()


def frames_of(client: openai.OpenAI, video_id: str) -> np.ndarray:
    video = client.videos.poll(video_id)
    assert video.status == "completed", video.error
    return read_mp4(client.videos.download_content(video_id).content)[0]


def test_text_image_remix_edit_and_extend_through_the_pipeline(client: openai.OpenAI) -> None:
    png = io.BytesIO()
    Image.new("RGB", (80, 40), (200, 30, 30)).save(png, format="PNG")
    source = client.videos.create(
        prompt="a red circle moving right", size="96x64", extra_body={"seed": 7}
    )
    with_image = client.videos.create(
        prompt="a cat", input_reference=("r.png", png.getvalue(), "image/png")
    )
    assert frames_of(client, source.id).shape == (32, 64, 96, 3)
    assert frames_of(client, with_image.id).shape == (32, 64, 64, 3)

    same = client.videos.remix(source.id, prompt="a red circle moving right")
    assert same.model_extra["seed"] == 7
    edit = client.videos.edit(
        prompt="now blue", video=openai.omit, extra_body={"video": {"id": source.id}}
    )
    extend = client.videos.extend(
        prompt="more", seconds="4", video=openai.omit, extra_body={"video": {"id": source.id}}
    )
    before = frames_of(client, source.id)
    # Same prompt, seed and settings: the same video (up to the codec).
    assert np.abs(frames_of(client, same.id).astype(int) - before).mean() < 2
    assert frames_of(client, edit.id).shape == (32, 64, 96, 3)
    longer = frames_of(client, extend.id)
    assert longer.shape == (64, 64, 96, 3)
    assert np.abs(longer[:32].astype(int) - before).mean() < 6  # the source (re-encoded), then more


def test_a_batch_mixing_plain_and_conditioned_jobs(client: openai.OpenAI) -> None:
    png = io.BytesIO()
    Image.new("RGB", (64, 64), (20, 200, 30)).save(png, format="PNG")
    ids = [
        client.videos.create(prompt="plain one", seconds="4").id,
        client.videos.create(
            prompt="from an image",
            seconds="4",
            input_reference=("g.png", png.getvalue(), "image/png"),
        ).id,
        client.videos.create(prompt="plain two", seconds="4").id,
    ]
    for video_id in ids:
        assert frames_of(client, video_id).shape == (32, 64, 64, 3)
