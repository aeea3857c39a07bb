"""The built-in model end to end: `vidora serve` with no model configuration at all, the
official client, a prompt from Shapes World, an mp4 back. Slow: it loads the real model."""

from __future__ import annotations

import numpy as np
import openai
import pytest
from harness import Deployment

from vidora.media import read_mp4

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def test_the_builtin_model_serves_a_video_end_to_end(deployment: Deployment) -> None:
    from vidora.pipelines.text_to_video import builtin_weights

    try:
        builtin_weights()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    deployment.engine = None  # no --models: exactly what `vidora serve` does out of the box
    proc = deployment.server(timeout=180)
    client = openai.OpenAI(base_url=proc.base_url, api_key=deployment.key("k"), max_retries=0)
    prompt = "a red circle moving right on a black background"
    video = client.videos.create_and_poll(prompt=prompt, model="sora-2", size="96x64")
    assert video.status == "completed", video.error
    frames, fps = read_mp4(client.videos.download_content(video.id).content)
    assert fps == 8 and frames.shape == (32, 64, 96, 3)
    assert np.std(frames.astype(float)) > 5  # an image, not a flat field

    from vidora.world.judge import judge

    print("judge:", judge(frames, prompt))
