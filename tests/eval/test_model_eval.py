"""`vidora eval` on a model release: metrics, sheets, the conditioning checks and the word gaps
are written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import vidora.eval.model
from vidora.cli import app
from vidora.eval.model import psnr, seam_jumps, seam_steps
from vidora.pipelines import TextToVideoPipeline


def test_eval_command_scores_a_release(tmp_path: Path) -> None:
    release = TextToVideoPipeline.tiny_random().save_pretrained(tmp_path / "tiny.safetensors")
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--checkpoint",
            str(release),
            "--split",
            "eval-seen",
            "-n",
            "3",
            "--seeds",
            "0",
            "-o",
            str(out),
            "--conditioning",
            "2",
            "--word-gaps",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    seen = metrics["splits"]["eval-seen"]
    assert 0.0 <= seen["adherence"] <= 1.0
    assert set(metrics["image_to_video"]) >= {"first_frame_psnr_db", "motion_adherence"}
    assert metrics["extension_8s"]["n"] == 2
    for key in ("word_gaps_percent", "word_gaps_heldout_percent"):  # both wordings
        assert set(metrics[key]) == {"colour", "shape", "size", "motion"}
    assert (out / "samples_eval-seen.png").is_file()


def test_conditioning_checks_run_on_the_first_seeds_clips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--seeds 1 --conditioning N` must not quietly re-measure seed 0's clips."""
    calls = []

    def recorder(name: str):
        def check(pipeline: TextToVideoPipeline, n: int = 50, seed: int = 0) -> dict:
            calls.append((name, n, seed))
            return {"n": n}

        return check

    monkeypatch.setattr(vidora.eval.model, "image_to_video_check", recorder("i2v"))
    monkeypatch.setattr(vidora.eval.model, "extension_check", recorder("extension"))
    release = TextToVideoPipeline.tiny_random().save_pretrained(tmp_path / "tiny.safetensors")
    args = ["eval", "--checkpoint", str(release), "--split", "eval-seen", "-n", "1"]
    args += ["--seeds", "2,0", "--conditioning", "3", "-o", str(tmp_path / "eval")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert calls == [("i2v", 3, 2), ("extension", 3, 2)]


def test_eval_command_rejects_bad_seeds(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["eval", "--checkpoint", "nowhere.safetensors", "--seeds", "a,b"]
    )
    assert result.exit_code == 2 and "--seeds" in result.output and "Traceback" not in result.output


def test_psnr() -> None:
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 255
    assert psnr(a, a) == float("inf")
    assert 10 * np.log10(255**2 / (255**2 / 48)) == psnr(a, b)


def test_every_seam_of_an_extended_video_is_measured() -> None:
    # 4 s is one chunk; 8 s is three (32 frames, then 27 new a chunk), 12 s four.
    assert seam_steps(32) == [] and seam_steps(64) == [31, 58] and seam_steps(96) == [31, 58, 85]
    track = np.stack([np.arange(64) * 1.5, np.full(64, 30.0)], axis=1)  # 1.5 px a frame, right
    assert seam_jumps(track) == [0.0, 0.0]  # steady motion is no jump
    track[59:, 0] += 6.0  # the third chunk starts 6 px on
    assert seam_jumps(track) == [0.0, 6.0]
    track[31:33] = np.nan  # unseen across the first seam: only the second is measured
    assert seam_jumps(track) == [6.0]
