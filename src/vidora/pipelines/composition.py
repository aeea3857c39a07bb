"""Several objects drawn one at a time and joined where each is drawn.

Asked for two objects in one prompt, the built-in DiT gives the scene one motion and one
shape about half the time (MODEL.md, "One motion for the scene"): near the noise its tokens
do not yet differ in what they will show, and one prompt cannot tell them which object is
theirs. Alone, an object takes its own shape and motion far more often. So a prompt that
names several objects can be drawn as one sampling per object, each from the prompt with the
other objects cut out (`vidora.world.captions.object_prompts`), and the latents joined token by
token: each token from the sampling whose object it shows. This is regional composition, as
MultiDiffusion (Bar-Tal et al., 2023) and VideoTetris (Tian et al., 2024) do it with given
regions; here the regions are where each sampling drew its object, read off its own latents.

A token shows an object where its latent lies far from its frame's background: the median
latent of the frame, since an object covers a minority of a frame's tokens.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

FOREGROUND_SPREAD = 4.0
"""A token shows an object where its distance from the frame's median latent passes this many
times the frame's median distance. On eval-seen's two-object prompts (seed 0) 1.5, 2.5, 4, 6
and 10 made 32, 32, 35, 32 and 29 of 68 whole: level but for the ends."""

TRIES = 3
"""Samplings drawn for each object after the first (in one batch with the first): the one
whose object overlaps the objects already drawn least is joined in. On eval-seen's
two-object prompts (seed 0) 1, 2, 3 and 5 tries made 26, 30, 32 and 34 of 68 whole."""


def foreground(latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, F, h, w) latents -> how far each token lies from its frame's background, in units of
    the frame's median distance (F, h, w), and where that marks an object, widened by one token
    each way so that an object's edge comes with it (F, h, w) bool."""
    frames = latents.float().flatten(2)  # (z, F, h*w)
    background = frames.median(dim=-1).values[..., None]  # (z, F, 1)
    distance = (frames - background).norm(dim=0)  # (F, h*w)
    typical = distance.median(dim=-1).values[..., None] + 1e-3  # (F, 1)
    distance = (distance / typical).view(latents.shape[1:])  # (F, h, w)
    mask = (distance > FOREGROUND_SPREAD).float()[None, None]  # (1, 1, F, h, w)
    mask = F.max_pool3d(mask, (1, 3, 3), stride=1, padding=(0, 1, 1))[0, 0].bool()
    return distance, mask


def overlap(mask: torch.Tensor, drawn: torch.Tensor) -> float:
    """The share of `mask`'s tokens that `drawn` already holds (0 for an empty mask)."""
    return float((mask & drawn).sum()) / max(1, int(mask.sum()))


def join(base: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
    """(z, F, h, w) latents with `part`'s object laid into `base`: the tokens where `part` shows
    an object and `base` does not, or shows one less strongly, come from `part`."""
    base_distance, base_mask = foreground(base)
    part_distance, part_mask = foreground(part)
    takes = part_mask & (~base_mask | (part_distance > base_distance))  # (F, h, w)
    return torch.where(takes[None], part, base)


def join_least_overlapping(base: torch.Tensor, tries: torch.Tensor) -> torch.Tensor:
    """(z, F, h, w) latents with the object of whichever of `tries` (k, z, F, h, w) overlaps the
    objects `base` shows least joined in (`join`): moving objects cross paths, so the least
    overlapping try is taken, not the first that keeps clear."""
    drawn = foreground(base)[1]
    return join(base, min(tries, key=lambda c: overlap(foreground(c)[1], drawn)))


def part_seed(seed: int, part: int, attempt: int) -> int:
    """The seed of an object's sampling after the first: a pure function of the prompt's seed,
    the object's place in the prompt and the attempt, so the same seed makes the same video."""
    return int(np.random.SeedSequence([seed, part, attempt]).generate_state(1)[0])
