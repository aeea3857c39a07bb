"""The four Shapes World splits, each a pure function of (split, index, seed).

A clip's randomness comes from `np.random.SeedSequence(seed, spawn_key=(split id, index))`:
the split id keeps the splits' streams disjoint (train and eval-seen never share a seed) and
the spawn key makes every index independent, so any clip is made on its own, on any machine,
in any order, without rendering the ones before it.

| split            | scenes                          | caption wording |
| train            | no held-out triple              | training        |
| eval-seen        | no held-out triple              | training        |
| eval-wording     | no held-out triple              | held-out        |
| eval-composition | at least one held-out triple    | training        |
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidora.world.captions import write_caption
from vidora.world.render import render
from vidora.world.scene import Scene, sample_scene, shape_swapped
from vidora.world.spec import NUM_FRAMES, SIZES, SPLITS

_SPLIT_IDS: dict[str, int] = {
    "train": 0x7261696E,
    "eval-seen": 0x5EE17E57,
    "eval-wording": 0x30D1F6,
    "eval-composition": 0xC0315E,
}
"""Fixed entropy per split; changing one changes every clip of that split."""

_WORDING = {"eval-wording": "heldout"}
_HELD_OUT = {"eval-composition": "require"}


@dataclass(frozen=True)
class Clip:
    """One clip of a split: its scene and caption; frames are rendered on demand."""

    split: str
    index: int
    seed: int
    scene: Scene
    caption: str

    def frames(self, num_frames: int = NUM_FRAMES) -> np.ndarray:
        """The clip's first `num_frames` frames, (T, H, W, 3) uint8."""
        return render(self.scene, num_frames)


def _root(split: str, index: int, seed: int) -> np.random.SeedSequence:
    """The clip's seed sequence; checks the arguments."""
    if split not in _SPLIT_IDS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    for name, value in (("index", index), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
    return np.random.SeedSequence(int(seed), spawn_key=(_SPLIT_IDS[split], int(index)))


def _size(root: np.random.SeedSequence) -> str:
    # One word straight from the root sequence: cheap, and the same in get_clip and clip_size.
    return SIZES[int(root.generate_state(1)[0]) % len(SIZES)]


def clip_size(split: str, index: int, seed: int = 0) -> str:
    """The canvas size of `get_clip(split, index, seed)`, without sampling the rest
    (so a sampler can bucket a whole dataset by size cheaply)."""
    return _size(_root(split, index, seed))


def get_clip(split: str, index: int, seed: int = 0) -> Clip:
    """Clip `index` of `split`: the same arguments give the same scene and caption anywhere."""
    root = _root(split, index, seed)
    size = _size(root)
    scene_rng, caption_rng = (np.random.default_rng(child) for child in root.spawn(2))
    scene = sample_scene(scene_rng, size, held_out=_HELD_OUT.get(split, "exclude"))
    caption = write_caption(scene, caption_rng, _WORDING.get(split, "train"))
    return Clip(split=split, index=int(index), seed=int(seed), scene=scene, caption=caption)


def clip_frames(
    split: str,
    index: int,
    seed: int,
    num_frames: int = NUM_FRAMES,
    swap_shapes: bool = False,
    start: int = 0,
) -> np.ndarray:
    """Clip `index`'s frames, (T, H, W, 3) uint8: what worker processes render (no torch here);
    with `swap_shapes`, its `shape_swapped` twin's. `start` > 0 renders the scene's motion
    carried on past the clip: frames start to start + T - 1, where a moving object may have
    left the frame (what an extension continues)."""
    if start < 0:
        raise ValueError(f"start must be 0 or more, not {start}")
    scene = get_clip(split, index, seed).scene
    return render(shape_swapped(scene) if swap_shapes else scene, start + num_frames)[start:]
