"""The Shapes World judge: did a video draw what its prompt asked for, and move it right?

It follows the reference method of `shared/specs/shapes-world.md` ("Judging a video"), so it
reads frames from any model, at any size (every length is scaled by s = min(w, h) / 64):

1. background per frame: the most common colour of the frame border;
2. foreground: pixels whose RGB distance to that background is over 60;
3. objects: connected components (8-connected, within a frame) of at least 12·s² pixels,
   coloured by the nearest palette colour to their median RGB;
4. shape: fill ratio (area / bounding-box area) nearest of circle .785, square 1, triangle .5,
   measured only on components that do not touch the frame edge;
5. track: per colour, the centroid of that colour's components in each frame it is seen;
6. motion from the track: still, bouncing, or the dominant axis and its sign;
7. consistency: the share of frames with the prompted colour in the prompted shape.

Where the reference method leaves room, the judge is made robust for generated and
compressed video (the renderer's own clips must still score 100%, raw and after mp4):

- Colour: a foreground component whose inside (eroded, so a codec's one-pixel rim of
  in-between colour does not count) holds two palette colours is two touching objects, and
  is split by colour. Pixels are read as background blended with a palette colour, so a
  soft edge is its object's colour, not a third one. Pieces of one colour less than a pixel
  apart are one object (codec ringing can cut a rim off a low-contrast object).
- Seen and found: a colour is *seen* in a frame when it has a component of at least
  12·s² px; it is *found* in a video when seen in at least half of the frames.
- Shape: measured on the pixels that are at least half the object's colour (read from
  brightness, which codecs keep at full resolution, when it differs enough from the
  background), so blur neither grows a high-contrast object nor shrinks a low-contrast
  one; lone noisy pixels and holes are cleaned. The nearest reference shape is chosen on
  fill ratio *and* top-half share (a triangle, apex up, holds a quarter of its area in
  the top half of its box, a circle or square half): small pixelated triangles fill their
  box more than 0.5, and the second feature keeps them triangles. The object's shape is
  the majority over the frames where it is whole (see below).
- Whole frames: frames whose area is well under the object's usual area (hidden behind
  another object, cut by the frame edge) are left out of shape and motion when enough
  whole frames remain.
- Motion: net displacement is a Theil-Sen fit (median of pairwise slopes) times the
  span, so a few jittery or half-hidden frames do not move a still object. A bounce must
  be real: the object falls at least 8·s px while speeding up (a quadratic fit of the
  fall curves downward), then rises at least 3·s px, on a track with gaps interpolated
  and single-frame outliers removed (median of 3).

Accuracy, per prompted object, as the evaluation reports it:

- colour: the prompted colour is found;
- shape: the colour is found and its majority shape is the prompted shape;
- motion: the colour is found and its motion is the prompted motion;
- consistency: the share of all frames in which the colour is seen in the prompted shape
  (a frame where the object touches the frame edge counts as its majority shape).

A video *adheres* when every prompted object is right in all three. The background is
reported (and compared with the prompt's) but, as in the spec, is not part of adherence.
Objects are told apart by colour, so two prompted objects of the same colour share a track.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from vidora.world.captions import ParsedPrompt, PromptObject, parse_prompt
from vidora.world.spec import (
    BACKGROUNDS,
    COLOURS,
    FILL_RATIOS,
    FOREGROUND_DISTANCE,
    MIN_COMPONENT_PIXELS,
    OBJECT_SIZES,
    STILL_THRESHOLD,
)

if TYPE_CHECKING:
    from vidora.world.scene import Scene

COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)
_PALETTE = np.array([COLOURS[name] for name in COLOUR_NAMES], dtype=np.float32)  # (8, 3)
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)  # BT.709, as the codec writes
_BACKGROUND_NAMES: tuple[str, ...] = tuple(BACKGROUNDS)
_BACKGROUND_RGB = np.array([BACKGROUNDS[name] for name in _BACKGROUND_NAMES], dtype=np.float32)

# 8-connected within a frame, never across frames: one `label` call covers a whole clip.
_IN_FRAME = np.zeros((3, 3, 3), dtype=bool)
_IN_FRAME[1] = True
_EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)
_CROSS_NEIGHBOURS = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=np.int8)
_IN_FRAME_CROSS = np.zeros((3, 3, 3), dtype=bool)
_IN_FRAME_CROSS[1] = ndimage.generate_binary_structure(2, 1)

MIN_PRESENCE = 0.5
"""Share of frames a colour must be seen in to count as an object of the video."""

CORE_DISTANCE = 36.0
"""A pixel this close to a palette colour is unambiguous (orange and yellow are 83 apart)."""

WHOLE_AREA = 0.8
"""Frames with an area under this share of the object's usual (75th percentile) area are
partly hidden or cut by the edge, and are left out of shape and motion when possible."""

LUMA_CONTRAST = 15.0
"""Brightness difference from which an object's extent is read from brightness alone."""

TOP_SHARES: dict[str, float] = {"circle": 0.5, "square": 0.5, "triangle": 0.25}
"""Share of a shape's area in the top half of its bounding box."""

BOUNCE_DROP = 8.0
"""Fall, in pixels before scaling, an object must make before a bounce counts."""

BOUNCE_RISE = 3.0
"""Rise, in pixels before scaling, after the lowest point of a bounce."""


@dataclass(frozen=True)
class Component:
    """One object-sized blob of one colour in one frame."""

    frame: int
    colour: str
    area: int
    """Pixels of the component (foreground pixels of this colour)."""
    centroid: tuple[float, float]
    """(x, y) in pixels; y grows downward."""
    bbox: tuple[int, int, int, int]
    """(x0, y0, x1, y1), end-exclusive, of the pixels at least half the object's colour."""
    touches_edge: bool
    fill_ratio: float
    """Area over box area, both of the pixels at least half the object's colour."""
    top_share: float
    """Share of the object's area in the top half of its box (a triangle's apex is up)."""
    shape: str | None
    """None when the component touches the frame edge (its true extent is unknown)."""


@dataclass(frozen=True)
class ColourTrack:
    """Everything seen of one colour over the clip; arrays have one entry per frame."""

    colour: str
    centroids: np.ndarray
    """(T, 2) area-weighted (x, y) of the colour's components; NaN where not seen."""
    areas: np.ndarray
    """(T,) total pixels of the colour's components; 0 where not seen."""
    shapes: tuple[str | None, ...]
    """Shape of the largest component per frame; None where unseen or touching the edge."""
    extents: np.ndarray
    """(T,) longest bounding-box side of the largest component; 0 where not seen."""

    @property
    def seen(self) -> np.ndarray:
        return self.areas > 0

    @property
    def presence(self) -> float:
        return float(self.seen.mean())

    def whole_frames(self) -> np.ndarray:
        """Indices of frames where the object looks whole (see WHOLE_AREA), else all seen."""
        return _whole_frames(np.flatnonzero(self.seen), self.areas)


def _whole_frames(seen: np.ndarray, areas: np.ndarray) -> np.ndarray:
    """The frames of `seen` whose area is near the object's usual area, when there are
    enough of them (a quarter of the seen frames, and two); else all of `seen`."""
    if len(seen) == 0:
        return seen
    whole = seen[areas[seen] >= WHOLE_AREA * np.percentile(areas[seen], 75)]
    return whole if len(whole) >= max(2, len(seen) // 4) else seen


@dataclass(frozen=True)
class Analysis:
    """What the judge sees in a clip before any prompt is read."""

    width: int
    height: int
    num_frames: int
    scale: float
    backgrounds: np.ndarray
    """(T, 3) background RGB per frame."""
    background: str
    """Nearest background name to the clip's median background."""
    components: tuple[tuple[Component, ...], ...]
    """Per frame, its components."""
    tracks: dict[str, ColourTrack]
    """Per colour seen at least once."""


@dataclass(frozen=True)
class ObjectVerdict:
    """One prompted object against what the video shows."""

    colour: str
    shape: str
    motion: str
    size: str | None
    found: bool
    detected_shape: str | None
    detected_motion: str | None
    detected_size: str | None
    shape_ok: bool
    motion_ok: bool
    size_ok: bool | None
    """None when the prompt gives no size; not part of adherence."""
    consistency: float
    presence: float
    """Share of frames in which the colour is seen at all."""

    @property
    def adheres(self) -> bool:
        return self.found and self.shape_ok and self.motion_ok


@dataclass(frozen=True)
class DetectedObject:
    """An object the judge found in the video, prompted or not."""

    colour: str
    shape: str | None
    motion: str
    size: str | None
    presence: float


@dataclass(frozen=True)
class Verdict:
    """The judge's answer for one video and one prompt."""

    objects: tuple[ObjectVerdict, ...]
    detected: tuple[DetectedObject, ...]
    background: str
    background_rgb: tuple[int, int, int]
    prompted_background: str | None
    size: str
    """The video's size, WIDTHxHEIGHT."""
    num_frames: int

    @property
    def adheres(self) -> bool:
        return all(obj.adheres for obj in self.objects)

    @property
    def background_ok(self) -> bool | None:
        if self.prompted_background is None:
            return None
        return self.background == self.prompted_background

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the CLI prints it; the harness stores it)."""
        return {
            "adheres": self.adheres,
            "size": self.size,
            "num_frames": self.num_frames,
            "background": self.background,
            "background_rgb": list(self.background_rgb),
            "prompted_background": self.prompted_background,
            "background_ok": self.background_ok,
            "objects": [asdict(obj) | {"adheres": obj.adheres} for obj in self.objects],
            "detected": [asdict(obj) for obj in self.detected],
        }

    def summary(self) -> str:
        """One line for people: 'adheres', or what is wrong with which object."""
        if self.adheres:
            return "adheres"
        problems = []
        for obj in self.objects:
            if not obj.found:
                wrong = [f"no {obj.colour} object"]
            else:
                wrong = [f"shape {obj.detected_shape}"] * (not obj.shape_ok)
                wrong += [f"motion {obj.detected_motion}"] * (not obj.motion_ok)
            if wrong:
                problems.append(f"{obj.colour} {obj.shape} {obj.motion}: {', '.join(wrong)}")
        return "does not adhere: " + "; ".join(problems)


def frame_scale(width: int, height: int) -> float:
    """The spec's s for any frame size (not only the three canvas sizes)."""
    return min(width, height) / 64


def as_clip(frames: np.ndarray) -> np.ndarray:
    """Checks frames are uint8 RGB; an (H, W, 3) image becomes a 1-frame clip."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must be (T, H, W, 3) RGB, got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    return frames


def frame_backgrounds(frames: np.ndarray) -> np.ndarray:
    """(T, 3) background per frame: the most common border colour.

    "Most common" is taken on colours quantised to steps of 8, then refined to the median
    of the border pixels near that mode, so codec noise does not scatter the vote.
    """
    frames = as_clip(frames)
    border = np.concatenate(
        [frames[:, 0], frames[:, -1], frames[:, 1:-1, 0], frames[:, 1:-1, -1]], axis=1
    ).astype(np.int32)  # (T, N, 3)
    keys = (border[..., 0] // 8) * 1024 + (border[..., 1] // 8) * 32 + border[..., 2] // 8
    offsets = np.arange(len(border))[:, None] * 32768
    votes = np.bincount((keys + offsets).ravel(), minlength=len(border) * 32768)
    mode = votes.reshape(len(border), 32768).argmax(axis=1)  # (T,)
    centre = np.stack([mode // 1024, (mode // 32) % 32, mode % 32], axis=1) * 8 + 4  # (T, 3)
    near = np.linalg.norm(border - centre[:, None], axis=-1) <= 20  # (T, N)
    return np.nanmedian(np.where(near[..., None], border, np.nan), axis=1).astype(np.float32)


def _grouped_median(values: np.ndarray, groups: np.ndarray, num_groups: int) -> np.ndarray:
    """Per-group median of values (N, C) for group ids in [0, num_groups): (num_groups, C),
    NaN for empty groups. One sort per channel instead of one median call per object."""
    counts = np.bincount(groups, minlength=num_groups)
    starts = np.cumsum(counts) - counts
    has = counts > 0
    low, high = (starts + (counts - 1) // 2)[has], (starts + counts // 2)[has]
    out = np.full((num_groups, values.shape[1]), np.nan, dtype=np.float64)
    for channel in range(values.shape[1]):
        ordered = values[np.lexsort((values[:, channel], groups)), channel]
        out[has, channel] = (ordered[low] + ordered[high]) / 2
    return out


def _unmix(
    pixels: np.ndarray, backgrounds: np.ndarray, colours: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Reads each pixel as background blended with a colour: p = bg + a (c - bg).

    pixels (N, 3), backgrounds (N, 3), colours (K, 3) -> (alpha, residual), each (N, K):
    the blend share `a` (clipped to [0, 1]) and the distance from p to that blend. An edge
    pixel softened by a codec is then still read as its object's colour, not a third one.
    """
    direction = colours[None] - backgrounds[:, None]  # (N, K, 3)
    offset = (pixels - backgrounds)[:, None]  # (N, 1, 3)
    alpha = np.clip((offset * direction).sum(-1) / (direction**2).sum(-1).clip(1e-6), 0, 1)
    residual = np.linalg.norm(offset - alpha[..., None] * direction, axis=-1)
    return alpha, residual


def _colour_map(
    frames: np.ndarray, backgrounds: np.ndarray, min_area: int
) -> tuple[np.ndarray, np.ndarray]:
    """(T, H, W) palette index of every object pixel (-1 elsewhere), and the foreground labels.

    Foreground components take the nearest palette colour to their median RGB (the spec);
    a component holding two colours in strength is an overlap, and is split by colour.
    """
    rgb = frames.astype(np.float32)
    distance_bg = np.linalg.norm(rgb - backgrounds[:, None, None, :], axis=-1)
    foreground = distance_bg > FOREGROUND_DISTANCE
    labels, count = ndimage.label(foreground, structure=_IN_FRAME)
    colour_map = np.full(labels.shape, -1, dtype=np.int16)
    if count == 0:
        return colour_map, labels

    areas = np.bincount(labels.ravel(), minlength=count + 1)
    kept = np.flatnonzero(areas >= min_area)
    kept = kept[kept > 0]
    if len(kept) == 0:
        return colour_map, labels

    in_kept = np.isin(labels, kept)
    pixel_labels = labels[in_kept]
    pixel_rgb = rgb[in_kept]  # (N, 3)
    pixel_bg = np.broadcast_to(backgrounds[:, None, None, :], rgb.shape)[in_kept]  # (N, 3)
    alpha, residual = _unmix(pixel_rgb, pixel_bg, _PALETTE)  # (N, 8) each
    nearest = residual.argmin(axis=1)
    core = (residual.min(axis=1) < CORE_DISTANCE) & (alpha[np.arange(len(nearest)), nearest] > 0.5)
    threshold = max(1, min_area // 3)
    core_counts = np.zeros((count + 1, len(COLOUR_NAMES)), dtype=np.int64)
    np.add.at(core_counts, (pixel_labels[core], nearest[core]), 1)
    mixed = np.flatnonzero((core_counts >= threshold).sum(axis=1) >= 2)
    if len(mixed):
        # A colour votes for a split with its eroded core: a codec leaves a rim of
        # in-between colour one pixel wide around an object, which erosion removes, while a
        # second object keeps an inside.
        core_map = np.full(labels.shape, -1, dtype=np.int16)
        core_map[in_kept] = np.where(core, nearest, -1)
        for index in np.flatnonzero((core_counts[mixed] >= threshold).any(axis=0)):
            inside = ndimage.binary_erosion(core_map == index, structure=_IN_FRAME_CROSS)
            core_counts[:, index] = np.bincount(labels[inside], minlength=count + 1)
    strong = core_counts >= threshold  # (L+1, 8)

    # The spec's rule: a component's colour is the palette colour nearest its median RGB.
    medians = _grouped_median(pixel_rgb, pixel_labels, count + 1)  # (L+1, 3)
    label_colour = np.linalg.norm(np.nan_to_num(medians)[:, None] - _PALETTE[None], axis=-1).argmin(
        axis=1
    )
    pixel_colour = label_colour[pixel_labels].astype(np.int16)
    for label in np.flatnonzero(strong.sum(axis=1) >= 2):
        mine = pixel_labels == label
        choices = np.where(strong[label], residual[mine], np.inf)
        pixel_colour[mine] = choices.argmin(axis=1)
    colour_map[in_kept] = pixel_colour
    return colour_map, labels


def _blend_share(rgb: np.ndarray, background: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """(h, w) share of `colour` over `background` in each pixel of a window (h, w, 3).

    Read from brightness (BT.709 luma) when the two differ in it by LUMA_CONTRAST or more:
    codecs keep brightness at full resolution but colour at half (4:2:0), so brightness
    puts an edge on the right pixel. Otherwise read from the RGB difference.
    """
    luma_contrast = float((colour - background) @ _LUMA)
    if abs(luma_contrast) >= LUMA_CONTRAST:
        alpha = ((rgb - background) @ _LUMA) / luma_contrast
    else:
        direction = colour - background
        alpha = ((rgb - background) @ direction) / max(float(direction @ direction), 1e-6)
    return np.clip(alpha, 0.0, 1.0)


def _shape_features(
    rgb: np.ndarray,
    background: np.ndarray,
    colour: np.ndarray,
    component: np.ndarray,
    near: np.ndarray,
) -> tuple[float, float, tuple[int, int, int, int]] | None:
    """Fill ratio, top-half share and box of one object, read from a window around it.

    The object is where a pixel is at least half its colour (blend share >= 0.5), so a
    codec's blur neither grows a high-contrast object nor shrinks a low-contrast one. Past
    the component's own pixels it may only grow into `near` (around it, off other objects),
    and only by pixels with two object neighbours: a lone noisy pixel is not shape.
    """
    mask = (component | near) & (_blend_share(rgb, background, colour) >= 0.5)
    neighbours = ndimage.convolve(mask.astype(np.int8), _CROSS_NEIGHBOURS, mode="constant")
    mask &= component | (neighbours >= 2)
    mask = ndimage.binary_fill_holes(mask)  # shapes are solid: a hole is noise
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    height = y1 - y0
    rows = mask[y0:y1].sum(axis=1)  # (h,)
    # Area above the box's middle line; the row it crosses counts half.
    upper = rows[: height // 2].sum() + (rows[height // 2] / 2 if height % 2 else 0.0)
    fill = float(len(ys) / ((x1 - x0) * height))
    return fill, float(upper / len(ys)), (int(x0), int(y0), int(x1), int(y1))


def shape_from_features(fill_ratio: float, top_share: float) -> str:
    """Nearest reference shape on fill ratio and top-half share (triangles, apex up, hold a
    quarter of their area in the top half; circles and squares half)."""
    return min(
        FILL_RATIOS,
        key=lambda shape: abs(FILL_RATIOS[shape] - fill_ratio) + abs(TOP_SHARES[shape] - top_share),
    )


def _components(
    frames: np.ndarray, backgrounds: np.ndarray, colour_map: np.ndarray, min_area: int
) -> list[list[Component]]:
    """Connected components of each colour, per frame, of at least `min_area` pixels."""
    num_frames, height, width = colour_map.shape
    pad = 2  # window margin around a component: room for a codec's blur
    per_frame: list[list[Component]] = [[] for _ in range(num_frames)]
    for index in np.unique(colour_map[colour_map >= 0]):
        # Pieces of one colour less than a pixel apart are one object: a codec's ringing can
        # cut a thin rim off a low-contrast object. (Two objects never share a colour.)
        mask = colour_map == index
        box = ndimage.find_objects(mask.astype(np.int8))[0]
        box = (box[0],) + tuple(slice(max(b.start - 1, 0), b.stop + 1) for b in box[1:])
        labels = np.zeros(mask.shape, dtype=np.int32)
        labels[box], count = ndimage.label(
            ndimage.binary_dilation(mask[box], structure=_IN_FRAME), structure=_IN_FRAME
        )
        labels[~mask] = 0
        ts, ys, xs = np.nonzero(labels)
        pixel_labels = labels[ts, ys, xs]
        areas = np.bincount(pixel_labels, minlength=count + 1)
        sum_x = np.bincount(pixel_labels, weights=xs, minlength=count + 1)
        sum_y = np.bincount(pixel_labels, weights=ys, minlength=count + 1)
        medians = _grouped_median(frames[ts, ys, xs].astype(np.float32), pixel_labels, count + 1)
        for label, slices in enumerate(ndimage.find_objects(labels), start=1):
            if slices is None or areas[label] < min_area:
                continue
            t = slices[0].start
            y_slice, x_slice = slices[1], slices[2]
            window = (
                slice(max(y_slice.start - pad, 0), min(y_slice.stop + pad, height)),
                slice(max(x_slice.start - pad, 0), min(x_slice.stop + pad, width)),
            )
            mine = labels[t][window] == label
            near = ndimage.binary_dilation(mine, _EIGHT_NEIGHBOURS, iterations=pad) & (
                mine | (colour_map[t][window] < 0)
            )
            rgb = frames[t][window].astype(np.float32)
            features = _shape_features(rgb, backgrounds[t], medians[label], mine, near)
            if features is None:  # an object too faint to be half its own colour anywhere
                x0, y0, x1, y1 = x_slice.start, y_slice.start, x_slice.stop, y_slice.stop
                fill, top_share = float(areas[label] / ((x1 - x0) * (y1 - y0))), 0.5
            else:
                fill, top_share, (x0, y0, x1, y1) = features
                x0, x1 = x0 + window[1].start, x1 + window[1].start
                y0, y1 = y0 + window[0].start, y1 + window[0].start
            touches_edge = x0 == 0 or y0 == 0 or x1 == width or y1 == height
            per_frame[t].append(
                Component(
                    frame=t,
                    colour=COLOUR_NAMES[index],
                    area=int(areas[label]),
                    centroid=(
                        float(sum_x[label] / areas[label]) + 0.5,
                        float(sum_y[label] / areas[label]) + 0.5,
                    ),
                    bbox=(int(x0), int(y0), int(x1), int(y1)),
                    touches_edge=bool(touches_edge),
                    fill_ratio=fill,
                    top_share=top_share,
                    shape=None if touches_edge else shape_from_features(fill, top_share),
                )
            )
    return per_frame


def _tracks(components: list[list[Component]]) -> dict[str, ColourTrack]:
    num_frames = len(components)
    colours = sorted({c.colour for frame in components for c in frame}, key=COLOUR_NAMES.index)
    tracks = {}
    for colour in colours:
        centroids = np.full((num_frames, 2), np.nan)
        areas = np.zeros(num_frames)
        extents = np.zeros(num_frames)
        shapes: list[str | None] = [None] * num_frames
        for t, frame in enumerate(components):
            mine = [c for c in frame if c.colour == colour]
            if not mine:
                continue
            weights = np.array([c.area for c in mine], dtype=np.float64)
            centroids[t] = (weights @ np.array([c.centroid for c in mine])) / weights.sum()
            areas[t] = weights.sum()
            largest = max(mine, key=lambda c: c.area)
            shapes[t] = largest.shape
            x0, y0, x1, y1 = largest.bbox
            extents[t] = max(x1 - x0, y1 - y0)
        tracks[colour] = ColourTrack(colour, centroids, areas, tuple(shapes), extents)
    return tracks


def analyse(frames: np.ndarray) -> Analysis:
    """Components and per-colour tracks of a clip (T, H, W, 3) uint8, any size."""
    frames = as_clip(frames)
    num_frames, height, width, _ = frames.shape
    scale = frame_scale(width, height)
    min_area = max(1, round(MIN_COMPONENT_PIXELS * scale**2))
    backgrounds = frame_backgrounds(frames)
    colour_map, _ = _colour_map(frames, backgrounds, min_area)
    components = _components(frames, backgrounds, colour_map, min_area)
    median_bg = np.median(backgrounds, axis=0)
    background = _BACKGROUND_NAMES[np.linalg.norm(_BACKGROUND_RGB - median_bg, axis=1).argmin()]
    return Analysis(
        width=width,
        height=height,
        num_frames=num_frames,
        scale=scale,
        backgrounds=backgrounds,
        background=background,
        components=tuple(tuple(frame) for frame in components),
        tracks=_tracks(components),
    )


def _theil_sen_slope(t: np.ndarray, v: np.ndarray) -> float:
    """Median of pairwise slopes: a line fit that shrugs off up to ~29% outliers."""
    i, j = np.triu_indices(len(t), k=1)
    return float(np.median((v[j] - v[i]) / (t[j] - t[i])))


def _bounces(t: np.ndarray, y: np.ndarray, scale: float) -> bool:
    """Vertical speed turns from down to up after an accelerating fall (see module doc)."""
    frames = np.arange(t[0], t[-1] + 1)
    y = ndimage.median_filter(np.interp(frames, t, y), size=3, mode="nearest")
    for k in range(1, len(y) - 1):
        if not (y[k] >= y[k - 1] and y[k] > y[k + 1]):
            continue  # not a lowest point (y grows downward)
        top = int(np.argmin(y[: k + 1]))
        if y[k] - y[top] < BOUNCE_DROP * scale or y[k] - y[k:].min() < BOUNCE_RISE * scale:
            continue
        if k - top < 2:
            continue  # too few frames to see the fall speed up
        curvature = np.polyfit(np.arange(top, k + 1), y[top : k + 1], 2)[0]
        if curvature > 0:
            return True
    return False


def classify_motion(centroids: np.ndarray, scale: float, areas: np.ndarray | None = None) -> str:
    """Motion of a (T, 2) centroid track (NaN where unseen): still, bouncing, or an axis.

    `areas` (T,), when given, drops partly hidden frames first (see ColourTrack.whole_frames).
    """
    centroids = np.asarray(centroids, dtype=np.float64)
    seen = np.flatnonzero(~np.isnan(centroids).any(axis=1))
    if areas is not None:
        seen = _whole_frames(seen, np.asarray(areas, dtype=np.float64))
    if len(seen) < 2:
        return "still"
    x, y = centroids[seen, 0], centroids[seen, 1]
    span = seen[-1] - seen[0]
    dx = _theil_sen_slope(seen, x) * span
    dy = _theil_sen_slope(seen, y) * span
    limit = STILL_THRESHOLD * scale
    if abs(dx) < limit and abs(dy) < limit:
        return "still"
    if _bounces(seen, y, scale):
        return "bouncing"
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def _majority_shape(track: ColourTrack) -> str | None:
    for frames in (track.whole_frames(), np.flatnonzero(track.seen)):
        votes = Counter(track.shapes[t] for t in frames if track.shapes[t] is not None)
        if votes:
            # Ties go to the shape listed first in FILL_RATIOS, so the verdict is repeatable.
            return max(FILL_RATIOS, key=lambda shape: votes.get(shape, 0))
    return None


def _size_class(track: ColourTrack, scale: float) -> str | None:
    frames = track.whole_frames()
    if len(frames) == 0:
        return None
    extent = float(np.median(track.extents[frames])) / scale
    return min(OBJECT_SIZES, key=lambda name: abs(OBJECT_SIZES[name] - extent))


def describe(track: ColourTrack, scale: float) -> DetectedObject:
    """Colour, majority shape, motion and size class of one colour's track."""
    return DetectedObject(
        colour=track.colour,
        shape=_majority_shape(track),
        motion=classify_motion(track.centroids, scale, track.areas),
        size=_size_class(track, scale),
        presence=track.presence,
    )


def _consistency(track: ColourTrack, shape: str, majority: str | None) -> float:
    """Share of frames with the colour in the prompted shape; a frame where the shape cannot
    be measured (cut by the frame edge) counts as the object's majority shape."""
    good = [
        t
        for t in np.flatnonzero(track.seen)
        if (track.shapes[t] if track.shapes[t] is not None else majority) == shape
    ]
    return len(good) / len(track.areas)


def judge_analysis(analysis: Analysis, prompt: ParsedPrompt) -> Verdict:
    """The verdict for an already analysed clip (lets callers judge one clip many ways)."""
    scale = analysis.scale
    detected = {
        colour: describe(track, scale)
        for colour, track in analysis.tracks.items()
        if track.presence >= MIN_PRESENCE
    }
    objects = []
    for wanted in prompt.objects:
        seen = detected.get(wanted.colour)
        track = analysis.tracks.get(wanted.colour)
        if seen is None or track is None:
            objects.append(
                ObjectVerdict(
                    colour=wanted.colour,
                    shape=wanted.shape,
                    motion=wanted.motion,
                    size=wanted.size,
                    found=False,
                    detected_shape=None,
                    detected_motion=None,
                    detected_size=None,
                    shape_ok=False,
                    motion_ok=False,
                    size_ok=False if wanted.size is not None else None,
                    consistency=0.0,
                    presence=track.presence if track is not None else 0.0,
                )
            )
            continue
        objects.append(
            ObjectVerdict(
                colour=wanted.colour,
                shape=wanted.shape,
                motion=wanted.motion,
                size=wanted.size,
                found=True,
                detected_shape=seen.shape,
                detected_motion=seen.motion,
                detected_size=seen.size,
                shape_ok=seen.shape == wanted.shape,
                motion_ok=seen.motion == wanted.motion,
                size_ok=(seen.size == wanted.size) if wanted.size is not None else None,
                consistency=_consistency(track, wanted.shape, seen.shape),
                presence=seen.presence,
            )
        )
    median_bg = np.median(analysis.backgrounds, axis=0)
    return Verdict(
        objects=tuple(objects),
        detected=tuple(detected.values()),
        background=analysis.background,
        background_rgb=tuple(int(round(v)) for v in median_bg),
        prompted_background=prompt.background,
        size=f"{analysis.width}x{analysis.height}",
        num_frames=analysis.num_frames,
    )


def judge(frames: np.ndarray, prompt: str | ParsedPrompt) -> Verdict:
    """Judges frames (T, H, W, 3) uint8 from any model against a prompt.

    A string prompt is read with `parse_prompt` (training or held-out wording); it raises
    ValueError when it cannot find a colour, shape and motion for every object.
    """
    if isinstance(prompt, str):
        prompt = parse_prompt(prompt)
    return judge_analysis(analyse(frames), prompt)


def scene_prompt(scene: Scene) -> ParsedPrompt:
    """The prompt a scene answers, exactly: what its caption says, without parsing words."""
    return ParsedPrompt(
        background=scene.background,
        objects=tuple(
            PromptObject(colour=o.colour, shape=o.shape, motion=o.motion, size=o.size)
            for o in scene.objects
        ),
    )
