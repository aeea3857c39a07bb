"""Shapes World as a torch dataset, and a sampler that batches clips of one size together.

Clips are rendered on the fly from `get_clip`, so a dataset of any length costs no disk and
every worker makes the same clip for the same index. Sizes differ between clips (the spec's
three canvases), so batches are bucketed by size: every batch stacks into one tensor. This is
the only module of `vidora.world` that imports torch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from vidora.world.spec import NUM_FRAMES, SIZES, SPLITS
from vidora.world.splits import clip_size, get_clip


class ShapesWorldDataset(Dataset):
    """`length` clips of `split`, item i -> {"video": (3, T, H, W) float32 in [-1, 1],
    "caption": str, "size": str}.

    `sizes` keeps only clips of those canvases: item i is then the i-th clip of the split
    whose size is in `sizes` (found once, cheaply, without sampling scenes). `num_frames=1`
    gives images (each clip's first frame).
    """

    def __init__(
        self,
        split: str = "train",
        length: int = 10_000,
        seed: int = 0,
        sizes: Sequence[str] = SIZES,
        num_frames: int = NUM_FRAMES,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        if length < 1:
            raise ValueError(f"length must be at least 1, not {length}")
        if not 1 <= num_frames <= NUM_FRAMES:
            raise ValueError(f"num_frames must be between 1 and {NUM_FRAMES}, not {num_frames}")
        unknown = [s for s in sizes if s not in SIZES]
        if unknown or not sizes:
            raise ValueError(f"sizes must be a non-empty subset of {', '.join(SIZES)}")
        self.split, self.length, self.seed, self.num_frames = split, length, seed, num_frames
        self.sizes = tuple(sizes)
        self._clip_indices: list[int] | None = None  # None: item i is clip i
        if set(self.sizes) != set(SIZES):
            self._clip_indices = self._indices_of_sizes()

    def _indices_of_sizes(self) -> list[int]:
        indices, index = [], 0
        while len(indices) < self.length:
            if clip_size(self.split, index, self.seed) in self.sizes:
                indices.append(index)
            index += 1
        return indices

    def clip_index(self, item: int) -> int:
        """The split index behind dataset item `item`."""
        if not 0 <= item < self.length:
            raise IndexError(f"item {item} out of range for a dataset of {self.length}")
        return item if self._clip_indices is None else self._clip_indices[item]

    def size_of(self, item: int) -> str:
        """Item `item`'s canvas size, without rendering it."""
        return clip_size(self.split, self.clip_index(item), self.seed)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, item: int) -> dict[str, Any]:
        clip = get_clip(self.split, self.clip_index(item), self.seed)
        frames = clip.frames(self.num_frames)  # (T, H, W, 3) uint8
        video = torch.from_numpy(frames).permute(3, 0, 1, 2)  # (3, T, H, W)
        video = video.float().div_(127.5).sub_(1.0)
        return {"video": video, "caption": clip.caption, "size": clip.scene.size}


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of dataset indices that all share one canvas size.

    With `shuffle`, indices are shuffled within each size and the batches' order is shuffled
    too, from `seed` and the epoch (call `set_epoch` each epoch, as with DistributedSampler).
    `drop_last` drops each size's short final batch.
    """

    def __init__(
        self,
        dataset: ShapesWorldDataset,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self.batch_size, self.shuffle, self.seed, self.drop_last = (
            batch_size,
            shuffle,
            seed,
            drop_last,
        )
        self.epoch = 0
        buckets: dict[str, list[int]] = {}
        for item in range(len(dataset)):
            buckets.setdefault(dataset.size_of(item), []).append(item)
        self.buckets = {size: buckets[size] for size in SIZES if size in buckets}

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle differently next time the sampler is iterated."""
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        batches: list[list[int]] = []
        for items in self.buckets.values():
            order = rng.permutation(items).tolist() if self.shuffle else list(items)
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                if len(batch) == self.batch_size or not self.drop_last:
                    batches.append(batch)
        if self.shuffle:
            batches = [batches[k] for k in rng.permutation(len(batches))]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._batches()

    def __len__(self) -> int:
        total = 0
        for items in self.buckets.values():
            full, rest = divmod(len(items), self.batch_size)
            total += full + (0 if self.drop_last or rest == 0 else 1)
        return total
