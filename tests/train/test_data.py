"""Training batches: a stream that skips its first batches is the same stream, later."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from vidora.train.config import DataConfig
from vidora.train.data import Batch, batches

SKIP = 3


def _take(stream: Iterator[Batch], count: int) -> list[Batch]:
    return list(itertools.islice(stream, count))


def _assert_same(a: list[Batch], b: list[Batch]) -> None:
    assert [x.size for x in a] == [y.size for y in b]
    assert [x.captions for x in a] == [y.captions for y in b]
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.video, y.video)


@pytest.mark.parametrize("source", ["shapes", "folder"])
def test_skipping_batches_resumes_the_same_stream(
    source: str, noise_folder: Callable[[str, int], Path]
) -> None:
    data = DataConfig(
        source="shapes" if source == "shapes" else str(noise_folder("data", 4)),
        sizes=("64x64", "96x64") if source == "shapes" else ("64x64",),
        frames=(1, 5, 9),
        frame_weights=(1.0, 1.0, 1.0),
    )
    whole = _take(batches(data, batch_size=2), SKIP + 3)
    resumed = _take(batches(data, batch_size=2, skip=SKIP), 3)
    _assert_same(whole[SKIP:], resumed)
    # The stream is not constant, so the comparison above could have failed.
    assert any(not torch.equal(whole[0].video, later.video) for later in whole[1:])


def test_encode_clips_sees_the_frames_as_frames_to_tensor_gives_them() -> None:
    # encode_clips pads bytes and converts on the VAE's device; the VAE must see the same video.
    from vidora.models.vae import VAE_PRESETS, VideoVAE, pad_frames
    from vidora.train.data import encode_clips, frames_to_tensor
    from vidora.world.splits import clip_size, get_clip

    torch.manual_seed(0)
    vae = VideoVAE(VAE_PRESETS["tiny"]()).eval()
    wide = [i for i in range(30) if clip_size("train", i) == "96x64"][:2]
    frames = [get_clip("train", i).frames() for i in wide]  # two (32, 64, 96, 3) uint8 clips
    reference = pad_frames(torch.stack([frames_to_tensor(f) for f in frames]))  # (B, 3, 33, H, W)
    with torch.no_grad():
        expected = vae.normalize(vae.encode(reference)[0])
    assert torch.equal(encode_clips(vae, frames), expected)


def test_a_cache_rendered_by_worker_processes_is_the_cache_rendered_here(tmp_path: Path) -> None:
    # On a GPU machine the cache's clips render in processes; the cache must not change with it.
    from vidora.models.vae import VAE_PRESETS, VideoVAE
    from vidora.train.dit import LatentCache

    torch.manual_seed(0)
    vae = VideoVAE(VAE_PRESETS["tiny"]()).eval()
    data = DataConfig(frames=(33,), frame_weights=(1.0,), seed=3)
    here = LatentCache.build(tmp_path / "here.safetensors", vae, data, 30)
    workers = LatentCache.build(tmp_path / "workers.safetensors", vae, data, 30, workers=2)
    assert here.keys == workers.keys and all(len(k) == 10 for k in here.keys.values())
    for size in here.latents:
        assert torch.equal(here.latents[size], workers.latents[size])


def test_a_saved_cache_loads_back_at_the_sizes_it_holds(tmp_path: Path) -> None:
    # The probe scripts read a run's cache without knowing its sizes.
    from vidora.models.vae import VAE_PRESETS, VideoVAE
    from vidora.train.dit import LatentCache

    torch.manual_seed(0)
    vae = VideoVAE(VAE_PRESETS["tiny"]()).eval()
    data = DataConfig(sizes=("96x64", "64x64"), frames=(33,), frame_weights=(1.0,), seed=3)
    built = LatentCache.build(tmp_path / "c.safetensors", vae, data, 4)
    loaded = LatentCache.load(tmp_path / "c.safetensors", DataConfig(seed=3))
    assert set(loaded.data.sizes) == {"96x64", "64x64"} and loaded.data.seed == 3
    assert loaded.keys == built.keys
    for size in built.latents:
        assert torch.equal(loaded.latents[size], built.latents[size])
    save_file({"weight": torch.zeros(2)}, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="holds no latents"):
        LatentCache.load(tmp_path / "model.safetensors", data)


def test_a_continuation_cache_holds_each_clips_motion_carried_on(tmp_path: Path) -> None:
    from vidora.models.vae import VAE_PRESETS, VideoVAE
    from vidora.train.data import encode_clips
    from vidora.train.dit import CONTINUATION_STARTS, LatentCache, continuation_start
    from vidora.world.splits import clip_frames

    torch.manual_seed(0)
    vae = VideoVAE(VAE_PRESETS["tiny"]()).eval()
    data = DataConfig(sizes=("64x64",), frames=(33,), frame_weights=(1.0,), seed=3)
    cache = LatentCache.build(tmp_path / "c.safetensors", vae, data, 4, continuation=True)
    keys = cache.keys["64x64"]
    assert CONTINUATION_STARTS == (27, 54)  # the pipeline's second and third chunks
    assert {continuation_start(k) for k in keys} == {27, 54}
    frames = [clip_frames("train", k, 3, start=continuation_start(k)) for k in keys]
    assert torch.equal(cache.latents["64x64"], encode_clips(vae, frames).half())
    plain = LatentCache.build(tmp_path / "p.safetensors", vae, data, 4)
    assert plain.keys["64x64"] == keys  # the same scenes, from frame 0
    assert not torch.equal(plain.latents["64x64"], cache.latents["64x64"])
    workers = LatentCache.build(
        tmp_path / "w.safetensors", vae, data, 4, workers=2, continuation=True
    )
    assert torch.equal(workers.latents["64x64"], cache.latents["64x64"])
    folder = DataConfig(source=str(tmp_path), frames=(33,), frame_weights=(1.0,))
    with pytest.raises(ValueError, match="continuation clips carry Shapes World"):
        LatentCache.build(tmp_path / "f.safetensors", vae, folder, 4, continuation=True)
