"""The renderer draws flat palette colours, the right shapes where the track says, and
never touches the frame edge."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vidora.world.render import render, sprite
from vidora.world.scene import Scene, WorldObject, sample_scene
from vidora.world.spec import (
    BACKGROUNDS,
    COLOURS,
    FILL_RATIOS,
    NUM_FRAMES,
    OBJECT_SIZES,
    SIZES,
    parse_size,
)


def _mask(frames: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.all(frames == np.array(rgb, dtype=np.uint8), axis=-1)  # (T, H, W)


@pytest.fixture(scope="module")
def rendered() -> list[tuple[Scene, np.ndarray]]:
    rng = np.random.default_rng(7)
    scenes = [sample_scene(rng, SIZES[k % 3]) for k in range(60)]
    scenes += [sample_scene(rng, SIZES[k % 3], held_out="require") for k in range(30)]
    return [(scene, render(scene)) for scene in scenes]


def test_shape_and_dtype() -> None:
    for size in SIZES:
        scene = sample_scene(np.random.default_rng(0), size)
        frames = render(scene)
        width, height = parse_size(size)
        assert frames.shape == (NUM_FRAMES, height, width, 3)
        assert frames.dtype == np.uint8


def test_only_exact_palette_colours(rendered) -> None:
    for scene, frames in rendered:
        expected = {BACKGROUNDS[scene.background]} | {COLOURS[o.colour] for o in scene.objects}
        packed = np.unique(frames.reshape(-1, 3).astype(np.int32) @ np.array([65536, 256, 1]))
        found = {(int(v) >> 16, (int(v) >> 8) & 255, int(v) & 255) for v in packed}
        assert found == expected  # no blending, nothing missing


def test_frame_border_is_always_background(rendered) -> None:
    for scene, frames in rendered:
        background = _mask(frames, BACKGROUNDS[scene.background])
        assert background[:, 0, :].all() and background[:, -1, :].all()
        assert background[:, :, 0].all() and background[:, :, -1].all()


def test_objects_are_drawn_as_their_sprite_where_the_track_says(rendered) -> None:
    for scene, frames in rendered:
        track = scene.track()
        for k, obj in enumerate(scene.objects):
            shape = sprite(obj.shape, obj.size, scene.scale)
            height, width = shape.shape
            mask = _mask(frames, COLOURS[obj.colour])
            for t in (0, 1, NUM_FRAMES // 2, NUM_FRAMES - 1):
                x, y = track[k, t]
                left, top = math.floor(x - width / 2 + 0.5), math.floor(y - height / 2 + 0.5)
                # The same pixels in every frame, centred on the track (within half a pixel),
                # and nothing of this colour anywhere else.
                assert np.array_equal(mask[t, top : top + height, left : left + width], shape)
                assert mask[t].sum() == shape.sum()


@pytest.mark.parametrize("size", ["small", "large"])
@pytest.mark.parametrize("shape", ["circle", "square", "triangle"])
def test_sprites_have_the_spec_extent_and_the_judges_fill_ratio(shape: str, size: str) -> None:
    mask = sprite(shape, size)
    side = OBJECT_SIZES[size]
    rows, cols = np.nonzero(mask)
    height, width = np.ptp(rows) + 1, np.ptp(cols) + 1  # the drawn box fills the sprite
    assert (height, width) == mask.shape
    assert width == side
    expected_height = side * math.sqrt(3) / 2 if shape == "triangle" else side
    assert abs(height - expected_height) <= 0.5
    area = {"circle": math.pi / 4, "square": 1.0, "triangle": math.sqrt(3) / 4}[shape] * side**2
    assert mask.sum() == pytest.approx(area, rel=0.2)
    assert np.array_equal(mask, mask[:, ::-1])  # symmetric left-right
    # The judge tells shapes apart by area / box area, nearest reference wins.
    ratio = mask.sum() / (height * width)
    assert min(FILL_RATIOS, key=lambda name: abs(FILL_RATIOS[name] - ratio)) == shape


def _single(shape: str, size: str, x: float, y: float) -> np.ndarray:
    obj = WorldObject("red", shape, "still", size, x, y, 0.0, 0.0)
    frames = render(Scene("64x64", "black", (obj,)), num_frames=1)
    return _mask(frames, COLOURS["red"])[0]


def test_triangle_points_up() -> None:
    mask = _single("triangle", "large", 32.0, 32.0)
    widths = mask.sum(axis=1)
    rows = np.nonzero(widths)[0]
    assert widths[rows[0]] < widths[rows[-1]]  # narrow apex on top, wide base below
    assert np.all(np.diff(widths[rows]) >= 0)


def test_later_object_is_drawn_over_earlier() -> None:
    below = WorldObject("red", "square", "still", "large", 30.0, 30.0, 0.0, 0.0)
    above = WorldObject("blue", "circle", "still", "small", 30.0, 30.0, 0.0, 0.0)
    frame = render(Scene("64x64", "navy", (below, above)), num_frames=1)[0]
    assert tuple(frame[30, 30]) == COLOURS["blue"]
    assert tuple(frame[22, 22]) == COLOURS["red"]


def test_fewer_frames_are_the_clip_prefix_and_rendering_is_deterministic() -> None:
    scene = sample_scene(np.random.default_rng(3), "96x64")
    full = render(scene)
    assert np.array_equal(render(scene), full)
    assert np.array_equal(render(scene, 1), full[:1])
    assert np.array_equal(render(scene, 9), full[:9])


def test_moving_objects_change_the_frames() -> None:
    obj = WorldObject("green", "circle", "right", "small", 12.0, 32.0, 1.25, 0.0)
    frames = render(Scene("64x64", "gray", (obj,)))
    cols = [np.nonzero(_mask(frames[t : t + 1], COLOURS["green"])[0])[1].mean() for t in (0, 31)]
    assert cols[1] - cols[0] == pytest.approx(1.25 * 31, abs=1.0)
