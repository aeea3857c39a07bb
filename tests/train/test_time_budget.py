"""A timed DiT run: planned from its probe to end inside the budget, capped by `steps`, and
the same run as one of the planned length."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vidora.cli import app
from vidora.pipelines import TextToVideoPipeline
from vidora.train.checkpoint import load_checkpoint_info
from vidora.train.config import DiTTrainConfig, load_config
from vidora.train.time_budget import PROBE_STEPS, ProbeTimes, plan_steps, train_for_minutes


@pytest.fixture(scope="module")
def vae(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny release, whose VAE the runs train on."""
    path = tmp_path_factory.mktemp("release") / "tiny.safetensors"
    return TextToVideoPipeline.tiny_random().save_pretrained(path)


def _cfg(run_dir: Path, steps: int, *extra: str, vae: Path = Path("none")) -> DiTTrainConfig:
    return load_config(
        DiTTrainConfig,
        None,
        [
            f"run_dir={run_dir}",
            f"vae_checkpoint={vae}",
            "text_encoder=tiny-random",
            "preset=tiny",
            f"steps={steps}",
            "batch_size=2",
            "cache_clips=6",
            "warmup=60",
            "val_clips=0",
            "word_gap_clips=0",
            "data.frames=[5]",
            "data.frame_weights=[1.0]",
            *extra,
        ],
    )


def test_plan_counts_steps_validations_and_saves_into_the_time_left() -> None:
    cfg = _cfg(Path("unused"), 10_000, "val_every=100", "save_every=50")
    times = ProbeTimes(step=0.1, validation=2.0, save=1.0, setup=5.0)
    # 100 s left: 5 s set-up, 3 s for the final validation and save, then 0.1 + 0.02 + 0.02 s
    # a step: 92 / 0.14 = 657 steps more.
    assert plan_steps(PROBE_STEPS, 100.0, times, cfg) == PROBE_STEPS + 657
    assert plan_steps(PROBE_STEPS, 1e9, times, cfg) == 10_000  # capped by steps
    assert plan_steps(PROBE_STEPS, 1.0, times, cfg) == PROBE_STEPS  # nothing fits: the probe


def test_a_timed_run_trains_to_its_plan_and_releases(vae: Path, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, 80, "log_every=5", vae=vae)
    out = train_for_minutes(cfg, minutes=2.0)  # 80 tiny steps fit: the cap is the plan
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == [10, 20, 30, 40, 50, 55, 60, 65, 70, 75, 80]  # the probe's logs, then the run's
    _, meta = load_checkpoint_info(out)
    assert meta["step"] == 80 and meta["train"]["steps"] == 80  # the release says what it ran
    assert TextToVideoPipeline.from_pretrained(out).dit is not None


def test_a_budget_the_probe_outlasts_keeps_the_probe(vae: Path, tmp_path: Path) -> None:
    out = train_for_minutes(_cfg(tmp_path, 1000, vae=vae), minutes=0.001)
    _, meta = load_checkpoint_info(out)
    assert meta["step"] == PROBE_STEPS


def test_a_timed_run_refuses_what_it_cannot_plan(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="warmup >= 50"):
        train_for_minutes(_cfg(tmp_path, 1000, "warmup=10"), minutes=1)
    with pytest.raises(ValueError, match="steps > 50"):
        train_for_minutes(_cfg(tmp_path, 40), minutes=1)
    (tmp_path / "last.safetensors").write_bytes(b"")
    result = CliRunner().invoke(
        app, ["train", "dit", "--minutes", "1", f"run_dir={tmp_path}", "warmup=100"]
    )
    assert result.exit_code == 2 and "--minutes plans a new run" in result.output
    assert "Traceback" not in result.output
