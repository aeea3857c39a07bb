"""Draw a Shapes World scene into frames: flat palette colours, no anti-aliasing.

Each object is a fixed sprite (a boolean mask made once per shape and size), so it looks the
same in every frame and its fill ratio, which the judge reads the shape from, never flickers.
Drawing is one fancy-index assignment per object for all frames at once: the sprite's pixels,
offset to where the track puts the object in each frame.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from vidora.world.scene import Scene, WorldObject, pixel_extent
from vidora.world.spec import BACKGROUNDS, COLOURS, NUM_FRAMES, parse_size, scale


@lru_cache(maxsize=64)
def sprite(shape: str, size: str, s: float = 1.0) -> np.ndarray:
    """The object's pixels, (height, width) bool, with its bounding box filling the array."""
    width, height = pixel_extent(shape, size, s)
    if shape == "square":
        mask = np.ones((height, width), dtype=bool)
    elif shape == "circle":
        # Pixels whose centres lie inside the disc.
        centre = (np.arange(width) + 0.5 - width / 2) ** 2
        mask = centre[None, :] + centre[:, None] < (width / 2) ** 2
    else:
        # Apex up: row k spans (k + 1) / height of the base, kept centred (its width has the
        # base's parity), so the top row is the narrowest and the bottom row the full side.
        rows = np.arange(height)
        gaps = np.floor((1 - (rows + 1) / height) * width / 2 + 0.5).astype(int)
        gaps = np.minimum(gaps, (width - 1) // 2)  # at least one (or two) pixels wide
        cols = np.arange(width)
        mask = (cols[None, :] >= gaps[:, None]) & (cols[None, :] < width - gaps[:, None])
    mask.setflags(write=False)
    return mask


def render(scene: Scene, num_frames: int = NUM_FRAMES) -> np.ndarray:
    """The scene's first `num_frames` frames, (T, H, W, 3) uint8 RGB."""
    width, height = parse_size(scene.size)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    frames[...] = BACKGROUNDS[scene.background]
    tracks = scene.track(num_frames)  # (N, T, 2)
    s = scale(width, height)
    for obj, centres in zip(scene.objects, tracks, strict=True):
        _draw(frames, obj, centres, s)
    return frames


def object_map(scene: Scene, num_frames: int = NUM_FRAMES) -> np.ndarray:
    """Which object each pixel shows, (T, H, W) int8: the index in `scene.objects` of the one
    drawn last there (as `render` paints them), -1 for the canvas. The world's exact labels,
    for training objectives that ask where each object is."""
    width, height = parse_size(scene.size)
    index = np.full((num_frames, height, width), -1, dtype=np.int8)
    tracks = scene.track(num_frames)  # (N, T, 2)
    s = scale(width, height)
    for k, (obj, centres) in enumerate(zip(scene.objects, tracks, strict=True)):
        t, rows, cols = _pixels(obj, centres, s, height, width)
        index[t, rows, cols] = k
    return index


def _draw(frames: np.ndarray, obj: WorldObject, centres: np.ndarray, s: float) -> None:
    """Paint one object into every frame, its sprite's box centred on that frame's centre."""
    t, rows, cols = _pixels(obj, centres, s, *frames.shape[1:3])
    frames[t, rows, cols] = COLOURS[obj.colour]


def _pixels(
    obj: WorldObject, centres: np.ndarray, s: float, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (frame, row, column) indices of an object's pixels in every frame, arrays of one
    shape, those off the canvas left out."""
    num_frames = len(centres)
    mask = sprite(obj.shape, obj.size, s)
    sprite_h, sprite_w = mask.shape
    # Top-left pixel per frame: the box's corner snapped to the nearest whole pixel.
    left = np.floor(centres[:, 0] - sprite_w / 2 + 0.5).astype(np.intp)  # (T,)
    top = np.floor(centres[:, 1] - sprite_h / 2 + 0.5).astype(np.intp)  # (T,)
    i, j = np.nonzero(mask)  # (P,) sprite pixels
    rows = top[:, None] + i  # (T, P)
    cols = left[:, None] + j  # (T, P)
    t = np.broadcast_to(np.arange(num_frames)[:, None], rows.shape)
    if rows.min() < 0 or cols.min() < 0 or rows.max() >= height or cols.max() >= width:
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        return t[inside], rows[inside], cols[inside]
    return t, rows, cols
