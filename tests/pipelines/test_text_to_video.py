"""The pipeline with tiny random parts (diffusers' test_wan.py style): shapes, seeds, batching,
save/load, durations by extension, conditioning, progress and bad input."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from vidora.models.vae import VideoVAE
from vidora.pipelines import GenerationDefaults, TextToVideoPipeline

PROMPT = "a red circle moving left on a black background"


@pytest.fixture(scope="module")
def pipe() -> TextToVideoPipeline:
    return TextToVideoPipeline.tiny_random(seed=0)


@pytest.mark.parametrize("size", ["64x64", "96x64", "64x96"])
def test_video_shape_per_size(pipe: TextToVideoPipeline, size: str) -> None:
    width, height = map(int, size.split("x"))
    video = pipe(PROMPT, size=size).videos[0]
    assert video.shape == (32, height, width, 3) and video.dtype == np.uint8


def test_same_seed_same_video_other_seed_other_video(pipe: TextToVideoPipeline) -> None:
    a, b, c = (pipe(PROMPT, seed=s).videos[0] for s in (7, 7, 8))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_a_batch_makes_the_same_videos_as_single_calls(pipe: TextToVideoPipeline) -> None:
    prompts = [PROMPT, "a blue square falling down on a gray background"]
    batch = pipe(prompts, seed=[3, 4]).videos
    for prompt, seed, video in zip(prompts, [3, 4], batch, strict=True):
        single = pipe(prompt, seed=seed).videos[0]
        # Different matmul shapes round differently: at most one level in a few pixels.
        assert np.abs(single.astype(int) - video.astype(int)).max() <= 1


@pytest.mark.parametrize(("seconds", "frames"), [(8, 64), (12, 96)])
def test_longer_videos_are_made_by_extension(
    pipe: TextToVideoPipeline, seconds: int, frames: int
) -> None:
    four = pipe(PROMPT, seed=5).videos[0]
    longer = pipe(PROMPT, seed=5, seconds=seconds).videos[0]
    assert longer.shape[0] == frames
    assert np.array_equal(longer[:32], four)  # the first chunk is the 4 s video itself


def test_extension_returns_only_new_frames(pipe: TextToVideoPipeline) -> None:
    previous = pipe(PROMPT, seed=1).videos[0]
    continued = pipe(PROMPT, seed=2, video=previous).videos[0]
    assert continued.shape == previous.shape
    assert not np.array_equal(continued, pipe(PROMPT, seed=2).videos[0])


@pytest.mark.parametrize("given", [1, 3, 5, 40])
def test_any_video_length_can_be_extended(pipe: TextToVideoPipeline, given: int) -> None:
    previous = np.random.default_rng(given).integers(0, 255, (given, 64, 64, 3), dtype=np.uint8)
    assert pipe(PROMPT, video=previous).videos[0].shape == (32, 64, 64, 3)


def test_first_frame_conditioning_changes_the_video(pipe: TextToVideoPipeline) -> None:
    image = np.full((64, 64, 3), 200, np.uint8)
    with_image = pipe(PROMPT, seed=1, image=image).videos[0]
    assert with_image.shape == (32, 64, 64, 3)
    assert not np.array_equal(with_image, pipe(PROMPT, seed=1).videos[0])


def test_given_latents_survive_sampling(
    pipe: TextToVideoPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clean first-frame latent is exactly what reaches the decoder."""
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    expected = pipe.vae.normalize(
        pipe.vae.encode(
            torch.from_numpy(image).permute(2, 0, 1)[:, None][None].float() / 127.5 - 1
        )[0]
    )
    seen = {}
    decode = pipe.vae.decode

    def spy(z: torch.Tensor) -> torch.Tensor:
        seen["z"] = pipe.vae.normalize(z)
        return decode(z)

    monkeypatch.setattr(pipe.vae, "decode", spy)
    pipe(PROMPT, image=image)
    torch.testing.assert_close(seen["z"][:, :, :1], expected, rtol=1e-4, atol=1e-4)


def test_a_run_started_part_way_ends_near_the_latents_it_started_from(
    pipe: TextToVideoPipeline,
) -> None:
    """Started near the data (SDEdit's use), sampling moves the given latents only a little;
    from noise it lands elsewhere."""
    text, mask = pipe._encode_text(["a red circle moving right", ""])

    def sample(start: tuple[torch.Tensor, float] | None) -> torch.Tensor:
        generators = [torch.Generator().manual_seed(0)]
        return pipe._sample(text, mask, generators, 64, 64, 8, 3.0, None, lambda _: None, start)

    from_noise = sample(None)  # (1, z, F, h, w)
    given = torch.randn(from_noise.shape, generator=torch.Generator().manual_seed(1))
    near = (sample((given, 0.75)) - given).abs().mean()
    assert near < (from_noise - given).abs().mean() / 4


def test_save_and_load_round_trip(pipe: TextToVideoPipeline, tmp_path: Path) -> None:
    path = pipe.save_pretrained(tmp_path / "tiny.safetensors", meta={"note": "test"})
    loaded = TextToVideoPipeline.from_pretrained(path)
    assert np.array_equal(loaded(PROMPT, seed=9).videos[0], pipe(PROMPT, seed=9).videos[0])


def test_half_precision_release_is_smaller_and_close(
    pipe: TextToVideoPipeline, tmp_path: Path
) -> None:
    full = pipe.save_pretrained(tmp_path / "full.safetensors")
    half = pipe.save_pretrained(tmp_path / "half.safetensors", half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    a = TextToVideoPipeline.from_pretrained(half)(PROMPT, seed=9).videos[0].astype(int)
    assert np.abs(a - pipe(PROMPT, seed=9).videos[0].astype(int)).mean() < 2.0


def test_progress_reaches_one(pipe: TextToVideoPipeline) -> None:
    seen: list[float] = []
    pipe(PROMPT, seconds=8, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) > 3


def test_settings_say_how_to_remake_the_video(pipe: TextToVideoPipeline) -> None:
    out = pipe(PROMPT, seed=11, guidance=2.5, steps=3)
    settings = out.settings[0]
    assert settings["prompt"] == PROMPT and settings["seed"] == 11 and settings["steps"] == 3
    again = pipe(
        settings["prompt"],
        seed=settings["seed"],
        guidance=settings["guidance"],
        steps=settings["steps"],
    )
    assert np.array_equal(again.videos[0], out.videos[0])


def test_guidance_applies_only_inside_its_interval(tmp_path: Path) -> None:
    def pipeline(interval: tuple[float, float]) -> TextToVideoPipeline:
        pipe = TextToVideoPipeline.tiny_random(
            defaults=GenerationDefaults(steps=2, guidance_interval=interval)
        )
        torch.manual_seed(1)  # wake the zero-initialised layers, so the text moves the velocity
        for param in pipe.dit.parameters():
            param.add_(0.2 * torch.randn_like(param))
        return pipe

    def video(interval: tuple[float, float], guidance: float = 5.0) -> np.ndarray:
        return pipeline(interval)(PROMPT, guidance=guidance, seed=5).videos[0]

    # Two steps at shift 2: times 0 and 1/3.
    everywhere, unguided = video((0.0, 1.0)), video((0.0, 1.0), guidance=1.0)
    assert not np.array_equal(everywhere, unguided)
    assert np.array_equal(video((0.5, 1.0)), unguided)  # no step inside: the conditional alone
    second_only = video((0.2, 1.0))
    assert not np.array_equal(second_only, everywhere)
    assert not np.array_equal(second_only, unguided)

    path = pipeline((0.2, 1.0)).save_pretrained(tmp_path / "interval.safetensors")
    assert TextToVideoPipeline.from_pretrained(path).defaults.guidance_interval == (0.2, 1.0)
    with pytest.raises(ValueError, match="guidance_interval"):
        GenerationDefaults(guidance_interval=(0.7, 0.2))


@pytest.mark.parametrize("sampler", ["euler", "renoise"])
def test_fresh_noise_comes_from_each_prompts_seed_and_rides_in_the_release(
    tmp_path: Path, sampler: str
) -> None:
    def pipeline(eta: float) -> TextToVideoPipeline:
        defaults = GenerationDefaults(steps=3, sampler=sampler, eta=eta)
        pipe = TextToVideoPipeline.tiny_random(defaults=defaults)
        torch.manual_seed(1)  # wake the zero-initialised layers, so the velocity is not 0
        for param in pipe.dit.parameters():
            param.add_(0.2 * torch.randn_like(param))
        return pipe

    stochastic = pipeline(1.0)
    prompts = [PROMPT, "a blue square falling down on a gray background"]
    batch = stochastic(prompts, seed=[3, 4]).videos
    for prompt, seed, video in zip(prompts, [3, 4], batch, strict=True):
        single = stochastic(prompt, seed=seed).videos[0]
        assert np.abs(single.astype(int) - video.astype(int)).max() <= 1
    assert not np.array_equal(batch[0], pipeline(0.0)(PROMPT, seed=3).videos[0])
    assert stochastic(PROMPT, seed=3).settings[0]["eta"] == 1.0

    path = stochastic.save_pretrained(tmp_path / "eta.safetensors")
    loaded = TextToVideoPipeline.from_pretrained(path).defaults
    assert (loaded.sampler, loaded.eta) == (sampler, 1.0)
    with pytest.raises(ValueError, match="eta applies to the euler and renoise samplers"):
        GenerationDefaults(sampler="heun", eta=0.5)
    with pytest.raises(ValueError, match="eta must lie"):
        GenerationDefaults(eta=-0.1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": ""}, "non-empty"),
        ({"size": "128x128"}, "size must be one of"),
        ({"seconds": 5}, "seconds must be one of"),
        ({"steps": 0}, "steps must be >= 1"),
        ({"image": np.zeros((32, 32, 3), np.uint8)}, "image must be uint8 frames of 64x64"),
        ({"prompt": ["a", "b"], "seed": [1, 2, 3]}, "seed has 3 entries for 2 prompts"),
    ],
)
def test_bad_input_is_a_clear_error(pipe: TextToVideoPipeline, kwargs: dict, message: str) -> None:
    kwargs = {"prompt": PROMPT, **kwargs}
    with pytest.raises(ValueError, match=message):
        pipe(**kwargs)


def test_a_checkpoint_that_is_not_a_release_is_refused(tmp_path: Path) -> None:
    from vidora.train.checkpoint import save_checkpoint

    path = save_checkpoint(tmp_path / "x.safetensors", {"w": torch.zeros(1)}, {"something": 1})
    with pytest.raises(ValueError, match="not a model release"):
        TextToVideoPipeline.from_pretrained(path)


def test_a_release_keeps_the_vae_refine_head(tmp_path: Path) -> None:
    tiny = TextToVideoPipeline.tiny_random()
    vae = VideoVAE(replace(tiny.vae.cfg, refine_width=4))
    torch.nn.init.normal_(vae.decoder.refine.conv_out.conv.weight, std=0.1)  # not the identity
    pipe = TextToVideoPipeline(vae, tiny.dit, tiny.text_encoder, tiny.defaults)
    loaded = TextToVideoPipeline.from_pretrained(pipe.save_pretrained(tmp_path / "r.safetensors"))
    assert loaded.vae.cfg.refine_width == 4
    assert np.array_equal(loaded(PROMPT, seed=9).videos[0], pipe(PROMPT, seed=9).videos[0])
