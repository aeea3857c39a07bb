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
latent of the frame, since an object covers a minority of a frame's tokens. Given frames are
cut in pixels the same way (`pixel_foreground`): a first image into one image per object, each
region given to the nearest colour word (`split_image`), and an extension's context into one
per object with the others painted out (`painted_out`). All of it reads objects as what stands
out of a plain background, as Shapes World's are.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import ImageColor
from scipy import ndimage

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


def least_overlapping(base: torch.Tensor, tries: torch.Tensor) -> int:
    """Which of `tries` (k, z, F, h, w) draws its object where the objects `base` (z, F, h, w)
    shows overlap it least: moving objects cross paths, so the least overlapping try is taken,
    not the first that keeps clear."""
    drawn = foreground(base)[1]
    overlaps = [overlap(foreground(c)[1], drawn) for c in tries]
    return overlaps.index(min(overlaps))


PIXEL_CONTRAST = 48.0
"""A pixel shows an object where its colour lies this far (Euclidean, 0-255 levels) from its
frame's median colour: under half of the least contrast between a Shapes World colour and a
background (blue on navy, purple or green on gray, about 110)."""


def pixel_foreground(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, H, W) bool: where each frame shows an object, a pixel wide
    around it, read as colour far from the frame's median (its background)."""
    return _widen(_far_from_background(frames))


def _backgrounds(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) -> (T, 3): each frame's median colour, its background where objects cover
    a minority of it."""
    return np.median(frames.reshape(len(frames), -1, 3), axis=1)


def _far_from_background(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, H, W) bool: colour over `PIXEL_CONTRAST` from the frame's
    median."""
    distance = np.linalg.norm(frames - _backgrounds(frames)[:, None, None], axis=-1)
    return distance > PIXEL_CONTRAST


def _widen(mask: np.ndarray) -> np.ndarray:
    """(T, H, W) bool, widened by a pixel each way (an object's edge blends into the
    background)."""
    widened = F.max_pool2d(torch.from_numpy(mask).float()[:, None], 3, stride=1, padding=1)
    return widened[:, 0].bool().numpy()


def split_image(image: np.ndarray, colours: list[str]) -> list[np.ndarray] | None:
    """(H, W, 3) uint8 -> one image per named colour, the other objects painted out (the
    image's median colour), or None where the objects cannot be told apart.

    The image's objects are its connected regions far from its median colour; each goes to
    the named colour (Pillow's colour names: "red" is (255, 0, 0)) nearest its own mean, so a
    given first frame can be cut into one frame per object, as a prompt is cut into one prompt
    per object. None when a colour has no name Pillow knows or no region of its own (two
    objects touching read as one region)."""
    try:
        named = np.array([ImageColor.getrgb(c)[:3] for c in colours], float)  # (k, 3)
    except ValueError:
        return None
    far = _far_from_background(image[None])  # (1, H, W)
    regions, count = ndimage.label(_widen(far)[0])  # (H, W), 0 the background
    # Each region's colour is its far pixels' mean (every region holds some: it is far
    # pixels widened), without the edge blended into the background.
    owners = [
        int(np.linalg.norm(named - image[(regions == r) & far[0]].mean(axis=0), axis=1).argmin())
        for r in range(1, count + 1)
    ]
    if set(owners) != set(range(len(colours))):
        return None
    background = _backgrounds(image[None])[0].astype(np.uint8)  # (3,)
    parts = []
    for k in range(len(colours)):
        others = np.isin(regions, [r + 1 for r, owner in enumerate(owners) if owner != k])
        parts.append(np.where(others[..., None], background, image))
    return parts


def painted_out(joined: np.ndarray, own: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    """(T, H, W, 3) frames of a joined video with the other objects painted out: where another
    object's own frames show it and this object's own frames do not, the frame's median colour.
    An object continued from this, not from its own sampling's frames, starts from what the
    joined video showed of it (fewer jumps at the seam, MODEL.md, "v17: one object at a time")."""
    mine = pixel_foreground(own)
    theirs = np.zeros_like(mine)
    for other in others:
        theirs |= pixel_foreground(other)
    fill = _backgrounds(joined).astype(np.uint8)[:, None, None]  # (T, 1, 1, 3)
    return np.where((theirs & ~mine)[..., None], fill, joined)


def part_seed(seed: int, part: int, attempt: int) -> int:
    """The seed of an object's sampling after the first: a pure function of the prompt's seed,
    the object's place in the prompt and the attempt, so the same seed makes the same video."""
    return int(np.random.SeedSequence([seed, part, attempt]).generate_state(1)[0])
