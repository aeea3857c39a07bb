"""The harness runs any generator over splits: the renderer itself must score 100%, and
generators that get colour or motion wrong must score low on exactly that."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vidora.eval import evaluate, split_clips
from vidora.world.render import render
from vidora.world.scene import Scene
from vidora.world.spec import COLOURS
from vidora.world.splits import Clip

SPLITS = ("eval-seen", "eval-composition")
N, SEEDS = 5, (0, 1)


class Oracle:
    """Answers each prompt with the clip it was written for (by prompt, size and seed), drawn
    through `draw` so tests can spoil it on purpose."""

    def __init__(self, draw=render) -> None:
        self.scenes: dict[tuple[str, str, int], Scene] = {}
        for split in SPLITS:
            for clip in split_clips(split, N, SEEDS):
                self.scenes[(clip.caption, clip.scene.size, clip.seed)] = clip.scene
        self.draw = draw
        self.calls = 0

    def __call__(self, prompt: str, size: str, seed: int) -> np.ndarray:
        self.calls += 1
        return self.draw(self.scenes[(prompt, size, seed)])


class BatchedOracle(Oracle):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    def generate_batch(self, prompts: list[str], sizes: list[str], seeds: list[int]) -> list:
        self.batches.append(sizes)
        return [render(self.scenes[key]) for key in zip(prompts, sizes, seeds, strict=True)]


def _permute_colours(scene: Scene) -> Scene:
    names = list(COLOURS)
    shifted = tuple(
        replace(o, colour=names[(names.index(o.colour) + 1) % len(names)]) for o in scene.objects
    )
    return replace(scene, objects=shifted)


def test_renderer_is_a_perfect_generator(tmp_path: Path) -> None:
    oracle = Oracle()
    metrics = evaluate(oracle, SPLITS, n=N, seeds=SEEDS, out_dir=tmp_path, progress=False)
    assert oracle.calls == len(SPLITS) * N * len(SEEDS)
    for split in SPLITS:
        values = metrics["splits"][split]
        assert values["samples"] == N * len(SEEDS)
        for key in ("colour_accuracy", "shape_accuracy", "motion_accuracy", "adherence"):
            assert values[key] == 1.0, (split, key)
        assert values["consistency"] == 1.0
        assert values["background_accuracy"] == 1.0
        assert all(v["adherence"] == 1.0 for v in values["adherence_by_size"].values())
        assert sum(v["samples"] for v in values["adherence_by_size"].values()) == N * len(SEEDS)
        assert set(values["adherence_by_seed"]) == {str(s) for s in SEEDS}
        if values["two_object_samples"]:
            assert values["two_object_adherence"] == 1.0
        sheet = Image.open(tmp_path / f"samples_{split}.png")
        assert sheet.width >= 8 * 64 and sheet.height >= 64
        lines = (tmp_path / f"verdicts_{split}.jsonl").read_text().splitlines()
        assert len(lines) == N * len(SEEDS)
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics


def test_two_object_adherence_counts_only_two_object_prompts(tmp_path: Path) -> None:
    metrics = evaluate(
        Oracle(), ["eval-composition"], n=N, seeds=SEEDS, out_dir=tmp_path, progress=False
    )
    values = metrics["splits"]["eval-composition"]
    clips = split_clips("eval-composition", N, SEEDS)
    assert values["two_object_samples"] == sum(len(c.scene.objects) == 2 for c in clips) > 0
    assert values["objects"] == sum(len(c.scene.objects) for c in clips)


def _swap_colours(scene: Scene) -> Scene:
    if len(scene.objects) != 2:
        return scene
    first, second = scene.objects
    swapped = (replace(first, colour=second.colour), replace(second, colour=first.colour))
    return replace(scene, objects=swapped)


def test_binding_tells_each_objects_words_from_the_others(tmp_path: Path) -> None:
    bound = evaluate(Oracle(), SPLITS, n=N, seeds=SEEDS, out_dir=tmp_path, progress=False)
    # Each object drawn with the other's colour: the words all heard, each given to the other.
    swapped = Oracle(draw=lambda scene: render(_swap_colours(scene)))
    unbound = evaluate(swapped, SPLITS, n=N, seeds=SEEDS, out_dir=tmp_path, progress=False)
    told = {"shape": 0, "motion": 0}
    for split in SPLITS:
        for attribute in told:
            right = bound["splits"][split]["binding"][attribute]
            wrong = unbound["splits"][split]["binding"][attribute]
            assert right["other"] == right["neither"] == 0
            assert (wrong["own"], wrong["other"]) == (0, right["own"])
            assert right["one_for_both"] == wrong["one_for_both"] == 0
            told[attribute] += right["own"]
            if right["own"]:
                assert (right["own_share"], wrong["own_share"]) == (1.0, 0.0)
    assert told["shape"] > 0 and told["motion"] > 0


def _first_objects_shape_and_motion_for_both(scene: Scene) -> Scene:
    if len(scene.objects) != 2:
        return scene
    first, second = scene.objects
    # The first object again in the second's colour, moved across its path (from its start, to
    # the second's row or column), so the copy stays in the frame.
    across = {"y": second.y} if first.motion in ("left", "right") else {"x": second.x}
    copy = replace(first, colour=second.colour, **across)
    return replace(scene, objects=(first, copy))


def test_binding_counts_videos_that_give_both_objects_one_shape_and_motion(
    tmp_path: Path,
) -> None:
    shared = Oracle(draw=lambda scene: render(_first_objects_shape_and_motion_for_both(scene)))
    metrics = evaluate(shared, SPLITS, n=N, seeds=SEEDS, out_dir=tmp_path, progress=False)
    videos = 0
    for split in SPLITS:
        for attribute in ("shape", "motion"):
            counts = metrics["splits"][split]["binding"][attribute]
            assert counts["one_for_both"] == counts["videos"]
            assert counts["neither"] == 0 and counts["other"] >= counts["videos"]
            videos += counts["videos"]
    assert videos > 0


def test_batched_generator_gets_batches_of_one_size(tmp_path: Path) -> None:
    oracle = BatchedOracle()
    metrics = evaluate(
        oracle, ["eval-seen"], n=N, seeds=SEEDS, out_dir=tmp_path, batch_size=3, progress=False
    )
    assert oracle.calls == 0  # the batch path was used, never the one-by-one one
    assert sum(len(b) for b in oracle.batches) == N * len(SEEDS)
    assert all(len(set(sizes)) == 1 and len(sizes) <= 3 for sizes in oracle.batches)
    assert metrics["splits"]["eval-seen"]["adherence"] == 1.0


def test_wrong_colours_score_low(tmp_path: Path) -> None:
    spoiled = Oracle(draw=lambda scene: render(_permute_colours(scene)))
    metrics = evaluate(spoiled, SPLITS, n=N, seeds=SEEDS, out_dir=tmp_path, progress=False)
    for split in SPLITS:
        values = metrics["splits"][split]
        # A shifted colour can only be "found" where the other object already had it.
        assert values["colour_accuracy"] <= 0.3
        assert values["adherence"] <= 0.1


def test_reversed_time_gets_motion_wrong_but_colour_and_shape_right(tmp_path: Path) -> None:
    spoiled = Oracle(draw=lambda scene: render(scene)[::-1])
    metrics = evaluate(spoiled, ["eval-seen"], n=N, seeds=SEEDS, out_dir=tmp_path, progress=False)
    values = metrics["splits"]["eval-seen"]
    assert values["colour_accuracy"] == values["shape_accuracy"] == 1.0
    # Left/right/up/down all flip; only still (and a bounce, nearly symmetric) survive.
    by_motion = values["motion_accuracy_by_motion"]
    for motion in {"left", "right", "up", "down"} & set(by_motion):
        assert by_motion[motion] == 0.0
    assert values["motion_accuracy"] < 0.8
    assert values["adherence"] < 0.8


def test_bad_generator_output_names_the_prompt(tmp_path: Path) -> None:
    def floats(prompt: str, size: str, seed: int) -> np.ndarray:
        return np.zeros((4, 64, 64, 3), dtype=np.float32)

    with pytest.raises(ValueError, match="uint8.*prompt"):
        evaluate(floats, ["eval-seen"], n=1, seeds=(0,), out_dir=tmp_path, progress=False)


def test_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown split"):
        evaluate(Oracle(), ["eval-nope"], n=1, out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="n must be"):
        evaluate(Oracle(), ["eval-seen"], n=0, out_dir=tmp_path, progress=False)
    assert not (tmp_path / "metrics.json").exists()


def test_prompts_are_the_split_captions() -> None:
    clips = split_clips("eval-wording", 3, (0, 2))
    assert [(c.index, c.seed) for c in clips] == [(0, 0), (1, 0), (2, 0), (0, 2), (1, 2), (2, 2)]
    assert all(isinstance(c, Clip) and c.split == "eval-wording" for c in clips)
