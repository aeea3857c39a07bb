"""Training batches, bucketed by size and duration, from Shapes World or a dataset folder.

Each step draws one bucket (a size and a number of frames), then a batch of clips of that size,
cut to that many frames at a random start. Shapes World clips are rendered on the fly and their
captions rewritten with fresh wording on every draw, so the model learns the words, not the
sentences. A dataset folder is read through `vidora.media.folder.VideoFolderDataset`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from vidora.models.vae import VideoVAE, pad_frames, padded_length, to_unit_range
from vidora.pipelines.text_to_video import frames_to_tensor
from vidora.train.config import DataConfig
from vidora.world.spec import NUM_FRAMES


@dataclass
class Batch:
    video: torch.Tensor
    """(B, 3, T, H, W) in [-1, 1], T = 1 + 4k."""
    captions: list[str]
    size: str


class ShapesSource:
    """Clips of a Shapes World split, by size, with rewritten captions."""

    def __init__(self, cfg: DataConfig, rank: int = 0, world_size: int = 1):
        from vidora.world.splits import clip_size, get_clip

        self._clip_size, self._get_clip = clip_size, get_clip
        self.split, self.seed = cfg.split, cfg.seed
        # Each process walks its own residue class of clip indices, so ranks never share a clip.
        self.cursor = {size: rank for size in cfg.sizes}
        self._stride = world_size
        self._rng = np.random.default_rng([cfg.seed, rank, 1])
        self.num_frames = NUM_FRAMES

    def take(
        self, size: str, count: int, render: bool = True
    ) -> tuple[list[np.ndarray], list[str], list[int]]:
        """`count` clips of `size`: frames, freshly worded captions, and the clips' indices.

        `render=False` returns no frames but leaves the source exactly as a rendering call
        would: it is how a resumed run skips the batches it has already trained on.
        """
        from vidora.world.captions import write_caption

        frames, captions, indices = [], [], []
        while len(indices) < count:
            index = self.cursor[size]
            self.cursor[size] += self._stride
            if self._clip_size(self.split, index, self.seed) != size:
                continue
            clip = self._get_clip(self.split, index, self.seed)
            if render:
                frames.append(clip.frames(self.num_frames))
            wording = "heldout" if self.split == "eval-wording" else "train"
            captions.append(write_caption(clip.scene, self._rng, wording))
            indices.append(index)
        return frames, captions, indices


class FolderSource:
    """Clips of a dataset folder (manifest.jsonl beside the videos), by size bucket."""

    def __init__(self, cfg: DataConfig, rank: int = 0, world_size: int = 1):
        from vidora.media.folder import VideoFolderDataset

        self.dataset = VideoFolderDataset(cfg.source, sizes=cfg.sizes)
        by_size: dict[str, list[int]] = {size: [] for size in cfg.sizes}
        for i, size in enumerate(self.dataset.sizes_of_items):
            by_size[size].append(i)
        self.by_size = {
            s: idx[rank::world_size] for s, idx in by_size.items() if idx[rank::world_size]
        }
        if not self.by_size:
            raise ValueError(f"{cfg.source} has no readable clips for this process")
        self._rng = np.random.default_rng([cfg.seed, rank, 2])
        self.num_frames = self.dataset.num_frames

    def take(
        self, size: str, count: int, render: bool = True
    ) -> tuple[list[np.ndarray], list[str], list[int]]:
        """`count` random clips of `size`: frames, captions, and the items' indices
        (no frames, without reading a file, when `render` is False)."""
        indices = [int(i) for i in self._rng.choice(self.by_size[size], size=count)]
        frames = [self.frames(i) for i in indices] if render else []
        return frames, [self.dataset.captions[i] for i in indices], indices

    def frames(self, index: int) -> np.ndarray:
        """Item `index` as (T, H, W, 3) uint8."""
        return (
            ((self.dataset[index]["video"].permute(1, 2, 3, 0) + 1) * 127.5).round().byte().numpy()
        )


def ordered_clips(
    source: ShapesSource | FolderSource,
    size: str,
    done: list[int],
    count: int,
    render: bool = True,
) -> tuple[list[np.ndarray], list[str], list[int]]:
    """The next `count` clips of `size` in the source's fixed order, after the keys in `done`:
    frames, captions and keys. Unlike `take`, the same call always gives the same clips, which
    is what a latent cache built in chunks and a held-out set need. `render=False` leaves the
    frames out of a Shapes World source's answer (to render them elsewhere)."""
    if isinstance(source, ShapesSource):
        source.cursor[size] = max(done) + 1 if done else 0
        return source.take(size, count, render)
    keys = source.by_size[size][len(done) : len(done) + count]
    return [source.frames(i) for i in keys], [source.dataset.captions[i] for i in keys], keys


@torch.no_grad()
def encode_clips(vae: VideoVAE, frames: list[np.ndarray]) -> torch.Tensor:
    """Clips of one size, (T, H, W, 3) uint8 each, as the DiT learns them: the VAE's normalised
    latent means, (B, z, F, h, w) on the VAE's device."""
    # Bytes travel and are padded; the float conversion (most of the CPU time) runs on the VAE's
    # device.
    clips = torch.from_numpy(np.stack(frames)).permute(0, 4, 1, 2, 3)  # (B, 3, T, H, W) uint8
    clips = pad_frames(clips).to(next(vae.parameters()).device)  # (B, 3, 33, H, W)
    mean, _ = vae.encode(to_unit_range(clips))
    return vae.normalize(mean)


def make_source(cfg: DataConfig, rank: int = 0, world_size: int = 1) -> ShapesSource | FolderSource:
    return (
        ShapesSource(cfg, rank, world_size)
        if cfg.source == "shapes"
        else FolderSource(cfg, rank, world_size)
    )


def batches(
    cfg: DataConfig, batch_size: int, rank: int = 0, world_size: int = 1, skip: int = 0
) -> Iterator[Batch]:
    """An endless stream of bucketed batches; the same config and rank give the same stream.

    `skip` drops the stream's first batches without rendering or reading them, so a run resumed
    at step N starts on batch N at once (replaying N batches costs minutes at a few thousand).
    """
    source = make_source(cfg, rank, world_size)
    sizes = list(getattr(source, "by_size", cfg.sizes))
    weights = np.asarray(cfg.frame_weights, dtype=float)
    if len(weights) != len(cfg.frames) or weights.sum() <= 0:
        raise ValueError(
            "data.frame_weights must give one positive weight per entry of data.frames"
        )
    padded = padded_length(source.num_frames)
    # Bucket choices are shared by all ranks (same seed), so every process steps the same shapes.
    rng = np.random.default_rng([cfg.seed, 0])
    crop_rng = np.random.default_rng([cfg.seed, rank, 3])
    for step in itertools.count():
        size = sizes[rng.integers(len(sizes))]
        num_frames = int(rng.choice(cfg.frames, p=weights / weights.sum()))
        frames, captions, _ = source.take(size, batch_size, render=step >= skip)
        start = int(crop_rng.integers(padded - num_frames + 1))
        if step < skip:
            continue
        video = pad_frames(torch.stack([frames_to_tensor(f) for f in frames]))  # (B, 3, 33, H, W)
        yield Batch(video[:, :, start : start + num_frames].contiguous(), captions, size)
