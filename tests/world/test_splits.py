"""Splits are pure functions of (split, index, seed) and keep the held-out compositions and
wording where the spec's table puts them."""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from vidora.world.captions import TEMPLATES
from vidora.world.spec import HELD_OUT_TRIPLES, NUM_FRAMES, SIZES, SPLITS, parse_size
from vidora.world.splits import Clip, clip_frames, clip_size, get_clip

N = 800  # clips per split in the sampling tests


@pytest.fixture(scope="module")
def clips() -> dict[str, list[Clip]]:
    return {split: [get_clip(split, i, seed=3) for i in range(N)] for split in SPLITS}


def _heldout_template(caption: str) -> bool:
    for templates in TEMPLATES["heldout"].values():
        for template in templates:
            parts = re.split(r"\{\w+\}", template)
            if re.fullmatch(".+?".join(re.escape(p) for p in parts), caption, re.IGNORECASE):
                return True
    return False


def test_same_call_same_clip_and_other_indices_differ() -> None:
    for split in SPLITS:
        a, b = get_clip(split, 17, seed=5), get_clip(split, 17, seed=5)
        assert a == b
        assert np.array_equal(a.frames(), b.frames())
        assert get_clip(split, 18, seed=5).scene != a.scene
        assert get_clip(split, 17, seed=6).scene != a.scene


def test_same_clip_in_a_fresh_process_without_torch() -> None:
    code = (
        "import json, sys; from vidora.world.splits import get_clip;"
        "c = get_clip('eval-wording', 123, seed=9);"
        "assert 'torch' not in sys.modules, 'only vidora.world.dataset may import torch';"
        "print(json.dumps([c.caption, c.scene.to_dict(), c.scene.objects[0].x]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    clip = get_clip("eval-wording", 123, seed=9)
    assert json.loads(out) == [clip.caption, clip.scene.to_dict(), clip.scene.objects[0].x]


def test_splits_draw_from_disjoint_streams(clips: dict[str, list[Clip]]) -> None:
    # The same (index, seed) in two splits gives unrelated clips.
    def key(c: Clip) -> tuple:
        return tuple((o.x, o.y, o.vx, o.vy) for o in c.scene.objects)

    keys = {split: {key(c) for c in clips[split]} for split in SPLITS}
    assert not keys["train"] & keys["eval-seen"]
    assert not keys["train"] & keys["eval-wording"]
    assert len(keys["train"]) == N


def test_held_out_triples_only_in_eval_composition(clips: dict[str, list[Clip]]) -> None:
    for split in ("train", "eval-seen", "eval-wording"):
        for clip in clips[split]:
            assert not any(o.triple in HELD_OUT_TRIPLES for o in clip.scene.objects), clip
    for clip in clips["eval-composition"]:
        assert any(o.triple in HELD_OUT_TRIPLES for o in clip.scene.objects), clip


def test_held_out_wording_only_in_eval_wording(clips: dict[str, list[Clip]]) -> None:
    for split in SPLITS:
        heldout = [_heldout_template(c.caption) for c in clips[split]]
        assert all(heldout) if split == "eval-wording" else not any(heldout), split


def test_sizes_are_drawn_uniformly_and_clip_size_agrees(clips: dict[str, list[Clip]]) -> None:
    for split in SPLITS:
        counts = collections.Counter(c.scene.size for c in clips[split])
        assert set(counts) == set(SIZES)
        assert all(abs(n / N - 1 / 3) < 0.06 for n in counts.values()), counts
        assert all(clip_size(split, c.index, c.seed) == c.scene.size for c in clips[split][:200])


def test_frames_match_the_clip_size() -> None:
    for index in range(6):
        clip = get_clip("train", index)
        width, height = parse_size(clip.scene.size)
        assert clip.frames().shape == (NUM_FRAMES, height, width, 3)
        assert np.array_equal(clip.frames(1), clip.frames()[:1])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("validation", 0, 0), "unknown split 'validation'; choose one of train, eval-seen"),
        (("train", -1, 0), "index must be a non-negative integer"),
        (("train", 1.5, 0), "index must be a non-negative integer"),
        (("train", 0, -3), "seed must be a non-negative integer"),
    ],
)
def test_bad_arguments_raise_clear_errors(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        get_clip(*args)
    with pytest.raises(ValueError, match=re.escape(message)):
        clip_size(*args)


def test_cli_sample_writes_clips_and_captions_jsonl(tmp_path) -> None:
    from typer.testing import CliRunner

    from vidora.cli import app
    from vidora.media import read_mp4

    out = tmp_path / "samples"
    args = ["world", "sample", "--split", "eval-wording", "-n", "3", "--seed", "2", "-o", str(out)]
    result = CliRunner().invoke(app, [*args, "--num-frames", "4"])
    assert result.exit_code == 0, result.output
    lines = (out / "captions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    for index, line in enumerate(lines):
        clip = get_clip("eval-wording", index, seed=2)
        name = f"{index:04d}.mp4"
        record = json.loads(line)
        assert list(record) == ["file", "caption", "size", "background", "objects"]
        assert record == {"file": name, "caption": clip.caption, **clip.scene.to_dict()}
        assert list(record["objects"][0]) == ["colour", "shape", "motion", "size"]
        assert line == json.dumps(record)  # one compact JSON object per line
        frames, fps = read_mp4(out / name)
        width, height = parse_size(clip.scene.size)
        assert frames.shape == (4, height, width, 3) and fps == 8


def test_cli_sample_refuses_an_unknown_split_without_a_traceback(tmp_path) -> None:
    from typer.testing import CliRunner

    from vidora.cli import app

    result = CliRunner().invoke(
        app, ["world", "sample", "--split", "holdout", "-n", "2", "-o", str(tmp_path / "x")]
    )
    assert result.exit_code != 0
    assert "unknown split 'holdout'" in result.output
    assert "eval-composition" in result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    assert not (tmp_path / "x").exists()


def test_a_clip_carried_on_continues_its_own_motion_and_may_leave_the_frame() -> None:
    index = next(
        i
        for i in range(200)
        if [o.motion for o in get_clip("train", i, seed=3).scene.objects] == ["right"]
    )
    clip = get_clip("train", index, seed=3)
    frames = clip_frames("train", index, 3)
    later = clip_frames("train", index, 3, start=27)
    assert later.shape == frames.shape
    assert np.array_equal(later[:5], frames[27:])  # its first frames are the clip's last
    # Carried on 60 frames, an object moving right at 1 to 1.5 px a frame is gone: canvas only.
    gone = clip_frames("train", index, 3, num_frames=1, start=200)[0]
    background = frames[0, 0, 0]
    assert clip.scene.objects[0].motion == "right" and (gone == background).all()
    with pytest.raises(ValueError, match="start must be 0 or more"):
        clip_frames("train", index, 3, start=-1)
