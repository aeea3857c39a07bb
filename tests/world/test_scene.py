"""Scene sampling follows the spec's rules: speeds, gravity and bounce, frame margins,
two objects apart and of different colours, held-out triples excluded or required."""

from __future__ import annotations

import numpy as np
import pytest

from vidora.world.scene import (
    MARGIN,
    MIN_GAP,
    Scene,
    WorldObject,
    half_extent,
    sample_scene,
)
from vidora.world.spec import (
    BOUNCE_DAMPING,
    GRAVITY,
    HELD_OUT_TRIPLES,
    NUM_FRAMES,
    SIZES,
    SPEED_RANGE,
    parse_size,
    scale,
)


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    rng = np.random.default_rng(1234)
    return [sample_scene(rng, SIZES[k % 3], held_out="exclude") for k in range(1500)]


@pytest.fixture(scope="module")
def composition_scenes() -> list[Scene]:
    rng = np.random.default_rng(99)
    return [sample_scene(rng, SIZES[k % 3], held_out="require") for k in range(600)]


def _objects(scenes: list[Scene]):
    for scene in scenes:
        for k, obj in enumerate(scene.objects):
            yield scene, k, obj


def test_linear_speeds_in_range_and_still_objects_do_not_move(scenes: list[Scene]) -> None:
    seen = set()
    for scene, k, obj in _objects(scenes):
        s = scene.scale
        track = scene.track()[k]
        step = np.diff(track, axis=0)  # (T-1, 2)
        seen.add(obj.motion)
        if obj.motion == "still":
            assert np.all(step == 0)
        elif obj.motion in ("left", "right", "up", "down"):
            axis = 0 if obj.motion in ("left", "right") else 1
            sign = -1 if obj.motion in ("left", "up") else 1
            speed = sign * step[:, axis]
            assert np.allclose(speed, speed[0])  # constant speed
            assert SPEED_RANGE[0] * s - 1e-9 <= speed[0] <= SPEED_RANGE[1] * s + 1e-9
            assert np.all(step[:, 1 - axis] == 0)
    assert seen == {"left", "right", "up", "down", "still", "bouncing"}


def test_bouncing_falls_under_gravity_then_flips_with_damping(scenes: list[Scene]) -> None:
    bounced = 0
    for scene, k, obj in _objects(scenes):
        if obj.motion != "bouncing":
            continue
        width, height = parse_size(scene.size)
        s = scene.scale
        track = scene.track()[k]
        y = track[:, 1]
        assert obj.vy == 0 and np.all(track[:, 0] == obj.x)  # starts at rest, falls straight
        assert y[0] <= height / 3  # starts in the top third
        v = np.diff(y)  # displacement per frame
        hit = int(np.argmax(v < 0))  # first step going up: the bounce is at frame `hit`
        assert v[hit] < 0, "the object must bounce within the clip"
        assert hit <= NUM_FRAMES - 3  # with room to see it rise
        # Constant acceleration g on the way down, starting from rest.
        assert v[0] == pytest.approx(0.0)
        assert np.allclose(np.diff(v[:hit]), GRAVITY * s)
        # At the bounce the speed flips and keeps 0.8 of itself; then gravity again.
        assert v[hit] / v[hit - 1] == pytest.approx(-BOUNCE_DAMPING)
        assert np.allclose(np.diff(v[hit:]), GRAVITY * s)
        # The bounce is at the bottom edge: the box's bottom sits on the margin.
        _, half_h = half_extent(obj.shape, obj.size, s)
        assert y[hit] + half_h == pytest.approx(height - MARGIN * s)
        bounced += 1
    assert bounced > 50


def test_every_object_stays_inside_the_frame_with_a_margin(scenes: list[Scene]) -> None:
    for scene, k, obj in _objects(scenes):
        width, height = parse_size(scene.size)
        s = scale(width, height)
        half_w, half_h = half_extent(obj.shape, obj.size, s)
        track = scene.track()[k]
        assert np.all(track[:, 0] - half_w >= MARGIN * s - 1e-9)
        assert np.all(track[:, 0] + half_w <= width - MARGIN * s + 1e-9)
        assert np.all(track[:, 1] - half_h >= MARGIN * s - 1e-9)
        assert np.all(track[:, 1] + half_h <= height - MARGIN * s + 1e-9)


def test_two_objects_differ_in_colour_and_never_come_close(
    scenes: list[Scene], composition_scenes: list[Scene]
) -> None:
    two = [scene for scene in scenes + composition_scenes if len(scene.objects) == 2]
    assert len(two) > 300
    for scene in two:
        a, b = scene.objects
        assert a.colour != b.colour
        s = scene.scale
        (wa, ha), (wb, hb) = half_extent(a.shape, a.size, s), half_extent(b.shape, b.size, s)
        delta = np.abs(scene.track()[0] - scene.track()[1])
        gap = np.maximum(delta[:, 0] - (wa + wb), delta[:, 1] - (ha + hb))
        assert np.all(gap >= MIN_GAP * s - 1e-9)


def test_about_a_third_of_scenes_have_two_objects(scenes: list[Scene]) -> None:
    counts = [len(scene.objects) for scene in scenes]
    assert set(counts) == {1, 2}
    assert 0.30 <= counts.count(2) / len(counts) <= 0.40


def test_held_out_triples_excluded_or_required(
    scenes: list[Scene], composition_scenes: list[Scene]
) -> None:
    for scene in scenes:
        assert not any(obj.triple in HELD_OUT_TRIPLES for obj in scene.objects)
    required = {obj.triple for s in composition_scenes for obj in s.objects}
    for scene in composition_scenes:
        assert any(obj.triple in HELD_OUT_TRIPLES for obj in scene.objects)
    assert required >= HELD_OUT_TRIPLES  # every held-out triple gets its turn


def test_attributes_are_all_used(scenes: list[Scene]) -> None:
    objects = [obj for scene in scenes for obj in scene.objects]
    assert {o.size for o in objects} == {"small", "large"}
    assert {o.shape for o in objects} == {"circle", "square", "triangle"}
    assert len({o.colour for o in objects}) == 8
    assert {s.background for s in scenes} == {"black", "gray", "navy"}
    assert {s.size for s in scenes} == set(SIZES)


def test_same_generator_state_gives_the_same_scene() -> None:
    a = sample_scene(np.random.default_rng(5), "96x64")
    b = sample_scene(np.random.default_rng(5), "96x64")
    c = sample_scene(np.random.default_rng(6), "96x64")
    assert a == b
    assert a != c


def test_track_shape_and_prefix() -> None:
    scene = sample_scene(np.random.default_rng(0), "64x96")
    full = scene.track()
    assert full.shape == (len(scene.objects), NUM_FRAMES, 2)
    assert np.array_equal(scene.track(5), full[:, :5])
    with pytest.raises(ValueError, match="num_frames"):
        scene.track(0)


def test_to_dict_names_what_is_shown() -> None:
    obj = WorldObject("red", "circle", "left", "small", 30.0, 20.0, -1.2, 0.0)
    scene = Scene("64x64", "black", (obj,))
    assert scene.to_dict() == {
        "size": "64x64",
        "background": "black",
        "objects": [{"colour": "red", "shape": "circle", "motion": "left", "size": "small"}],
    }


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: WorldObject("pink", "circle", "left", "small", 1, 1, 0, 0), "colour"),
        (lambda: WorldObject("red", "star", "left", "small", 1, 1, 0, 0), "shape"),
        (lambda: WorldObject("red", "circle", "spin", "small", 1, 1, 0, 0), "motion"),
        (lambda: WorldObject("red", "circle", "left", "medium", 1, 1, 0, 0), "size"),
        (lambda: Scene("65x64", "black", ()), "size"),
        (lambda: Scene("64x64", "white", ()), "background"),
        (lambda: Scene("64x64", "black", ()), "at least one object"),
        (lambda: sample_scene(np.random.default_rng(0), "64x64", held_out="maybe"), "held_out"),
    ],
)
def test_bad_values_raise_clear_errors(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()
