"""Per-token object labels for the attribute loss (`DiTTrainConfig.attribute_weight`).

Shapes World knows exactly which object every pixel shows. For each DiT token (a latent frame
by a patch of pixels) this gives the colour, shape, motion and size of the object covering
most of it, or -1 where none covers enough; `vidora.models.dit.AttributeHead` is charged for
reading them from the tokens.
"""

from __future__ import annotations

import numpy as np
import torch

from vidora.models.vae import TEMPORAL_FACTOR, padded_length
from vidora.world.render import object_map
from vidora.world.scene import Scene
from vidora.world.spec import COLOURS, MOTIONS, NUM_FRAMES, OBJECT_SIZES, SHAPES
from vidora.world.splits import get_clip

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "colour": tuple(COLOURS),
    "shape": SHAPES,
    "motion": MOTIONS,
    "size": tuple(OBJECT_SIZES),
}
"""The attributes a token is labelled with, each by its index in the tuple."""

MIN_COVER = 1 / 16
"""Share of a token's pixels (averaged over its frames) an object must cover to label it: a
small object (10 px) across four tokens still labels each of them."""


def token_labels(scene: Scene, token_px: int, start: int = 0) -> np.ndarray:
    """The labels of a clip's tokens, (A, F, rows, columns) int8 with A = len(ATTRIBUTES):
    frames `start` to `start + NUM_FRAMES - 1` of `scene`, padded as the VAE pads them, a latent
    frame for the first and then one per `TEMPORAL_FACTOR` frames, `token_px` pixels square."""
    index = object_map(scene, start + NUM_FRAMES)[start:]  # (T, H, W)
    frames, height, width = index.shape
    rows, cols = height // token_px, width // token_px
    n = len(scene.objects)
    shown = index[None] == np.arange(n)[:, None, None, None]  # (n, T, H, W)
    cover = shown.reshape(n, frames, rows, token_px, cols, token_px).sum((3, 5))  # (n, T, r, c)
    pad = padded_length(frames) - frames  # the last frame repeated, as the VAE pads a clip
    cover = np.concatenate([cover, np.repeat(cover[:, -1:], pad, axis=1)], axis=1)  # (n, T', r, c)
    later = cover[:, 1:].reshape(n, -1, TEMPORAL_FACTOR, rows, cols).mean(2)  # (n, F - 1, r, c)
    share = np.concatenate([cover[:, :1], later], axis=1) / token_px**2  # (n, F, r, c)
    values = np.array(
        [[names.index(getattr(o, a)) for a, names in ATTRIBUTES.items()] for o in scene.objects]
    )  # (n, A)
    labels = np.moveaxis(values[share.argmax(0)], -1, 0).astype(np.int8)  # (A, F, r, c)
    labels[:, share.max(0) < MIN_COVER] = -1
    return labels


def clip_labels(
    split: str, seed: int, keys: list[int], token_px: int, starts: list[int] | None = None
) -> torch.Tensor:
    """`token_labels` of Shapes World clips by key (each from its frame in `starts`), stacked:
    (N, A, F, rows, columns) int8."""
    starts = starts or [0] * len(keys)
    labels = [
        token_labels(get_clip(split, key, seed).scene, token_px, start)
        for key, start in zip(keys, starts, strict=True)
    ]
    return torch.from_numpy(np.stack(labels))
