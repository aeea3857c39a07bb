"""The torch dataset renders clips as (3, T, H, W) floats in [-1, 1]; the bucket sampler
only ever batches clips of one size."""

from __future__ import annotations

import collections

import pytest
import torch
from torch.utils.data import DataLoader

from vidora.world.dataset import BucketBatchSampler, ShapesWorldDataset
from vidora.world.spec import BACKGROUNDS, SIZES, parse_size
from vidora.world.splits import get_clip


def test_item_is_a_video_tensor_with_its_caption_and_size() -> None:
    data = ShapesWorldDataset(split="eval-seen", length=6, seed=2)
    assert len(data) == 6
    for i in range(len(data)):
        item = data[i]
        clip = get_clip("eval-seen", i, seed=2)
        width, height = parse_size(item["size"])
        assert item["video"].shape == (3, 32, height, width)
        assert item["video"].dtype == torch.float32
        assert item["video"].min() >= -1.0 and item["video"].max() <= 1.0
        assert item["caption"] == clip.caption and item["size"] == clip.scene.size
        # The exact frames, mapped 0 -> -1 and 255 -> 1.
        frames = torch.from_numpy(clip.frames()).permute(3, 0, 1, 2).float()
        assert torch.allclose((item["video"] + 1) * 127.5, frames, atol=1e-4)


def test_num_frames_one_gives_the_first_frame_as_an_image() -> None:
    data = ShapesWorldDataset(length=2, num_frames=1)
    full = ShapesWorldDataset(length=2, num_frames=32)
    assert data[1]["video"].shape[1] == 1
    assert torch.equal(data[1]["video"][:, 0], full[1]["video"][:, 0])
    assert ShapesWorldDataset(length=2, num_frames=9)[0]["video"].shape[1] == 9


def test_background_pixels_map_to_the_background_colour() -> None:
    item = ShapesWorldDataset(length=1)[0]
    corner = tuple(((item["video"][:, 0, 0, 0] + 1) * 127.5).round().int().tolist())
    assert corner == BACKGROUNDS[get_clip("train", 0).scene.background]


def test_sizes_keep_only_those_canvases() -> None:
    data = ShapesWorldDataset(length=12, sizes=("96x64",))
    assert {data.size_of(i) for i in range(12)} == {"96x64"}
    assert data[5]["video"].shape[2:] == (64, 96)
    assert len({data.clip_index(i) for i in range(12)}) == 12


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "nope"}, "unknown split"),
        ({"length": 0}, "length"),
        ({"num_frames": 33}, "num_frames"),
        ({"num_frames": 0}, "num_frames"),
        ({"sizes": ("128x128",)}, "sizes"),
    ],
)
def test_bad_arguments_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ShapesWorldDataset(**kwargs)


def test_out_of_range_item_raises_index_error() -> None:
    with pytest.raises(IndexError):
        ShapesWorldDataset(length=3)[3]


def test_bucket_sampler_batches_one_size_and_covers_everything() -> None:
    data = ShapesWorldDataset(length=100)
    sampler = BucketBatchSampler(data, batch_size=8, shuffle=True, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    assert sorted(i for b in batches for i in b) == list(range(100))
    for batch in batches:
        assert len({data.size_of(i) for i in batch}) == 1
        assert 1 <= len(batch) <= 8
    # Shuffled reproducibly, and differently in the next epoch.
    assert batches == list(BucketBatchSampler(data, batch_size=8, shuffle=True, seed=1))
    sampler.set_epoch(1)
    assert list(sampler) != batches


def test_bucket_sampler_drop_last_and_no_shuffle() -> None:
    data = ShapesWorldDataset(length=50)
    per_size = collections.Counter(data.size_of(i) for i in range(50))
    sampler = BucketBatchSampler(data, batch_size=4, shuffle=False, drop_last=True)
    batches = list(sampler)
    assert all(len(b) == 4 for b in batches)
    assert len(batches) == len(sampler) == sum(n // 4 for n in per_size.values())
    assert [i for b in batches for i in b] == sorted(
        (i for b in batches for i in b), key=lambda i: (SIZES.index(data.size_of(i)), i)
    )


def test_dataloader_stacks_bucketed_batches() -> None:
    data = ShapesWorldDataset(length=12, num_frames=4)
    loader = DataLoader(data, batch_sampler=BucketBatchSampler(data, batch_size=3, seed=0))
    for batch in loader:
        assert batch["video"].ndim == 5 and batch["video"].shape[1:3] == (3, 4)
        assert len(set(batch["size"])) == 1
        assert len(batch["caption"]) == batch["video"].shape[0]
