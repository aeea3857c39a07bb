"""Fit a DiT run to the time there is: `vidora train dit --minutes M`.

A rented or lent GPU is held for a fixed time, and a run that is cut off before its last save
leaves nothing; a run planned too short leaves the time unused and its cosine ended early. So a
timed run first trains `PROBE_STEPS` steps (under the learning rate's warm-up, where the rate
does not depend on the run's length), times them, plans `steps` so that the run, its
validations, saves and final release end inside the budget, and resumes to that many. The
planned run is the run of that many steps: the same warm-up, one cosine, one draw order.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from vidora.train.config import DiTTrainConfig
from vidora.train.dit import Progress, main

PROBE_STEPS = 50
"""Steps timed before the rest is planned."""

PROBE_LOG_EVERY = 10
"""The probe logs this often, so its step time is read between logs, past the first step's
warm-up of kernels and caches."""

MARGIN = 0.1
"""Share of the budget kept back for what the timings cannot see (a slower stretch, the final
save's disk)."""


@dataclass(frozen=True)
class ProbeTimes:
    """What the probe measured, in seconds."""

    step: float
    """One training step, between the probe's first and last logs."""
    validation: float
    """One validation (flow loss and word gaps), or 0 when the run measures none."""
    save: float
    """One save of the training state and the release, at the probe's end."""
    setup: float
    """A run's set-up before its first step, without building the latent cache."""


def plan_steps(probe_steps: int, left: float, times: ProbeTimes, cfg: DiTTrainConfig) -> int:
    """The steps a run can reach when `left` seconds remain after a probe of `probe_steps`:
    a resumed run's set-up, then each step with its share of validations and saves. Never
    fewer than the probe's steps, never more than `cfg.steps`."""
    per_step = times.step + times.validation / cfg.val_every + times.save / cfg.save_every
    more = math.floor((left - times.setup - times.validation - times.save) / per_step)
    return max(probe_steps, min(cfg.steps, probe_steps + more))


def check_timed_run(cfg: DiTTrainConfig, minutes: float) -> None:
    """Raise ValueError, saying what to change, where `cfg` cannot be a timed run."""
    if minutes <= 0:
        raise ValueError(f"--minutes must be positive, not {minutes}")
    if "WORLD_SIZE" in os.environ:
        raise ValueError("--minutes plans a one-process run; under torchrun give steps=N")
    if (Path(cfg.run_dir) / "last.safetensors").exists():
        raise ValueError(
            f"--minutes plans a new run, and {cfg.run_dir} holds one: resume it with steps=N, "
            "or name a new run_dir"
        )
    if cfg.warmup < PROBE_STEPS:
        raise ValueError(
            f"--minutes times {PROBE_STEPS} steps under the warm-up; set warmup >= {PROBE_STEPS}"
        )
    if cfg.steps <= PROBE_STEPS:
        raise ValueError(f"--minutes needs steps > {PROBE_STEPS}, its cap; got {cfg.steps}")


def train_for_minutes(
    cfg: DiTTrainConfig, minutes: float, progress: Progress | None = None
) -> Path:
    """Train a new run for as many steps as end inside `minutes` of wall time from now (set-up
    and the latent cache included), at most `cfg.steps`. Returns the release's path."""
    check_timed_run(cfg, minutes)
    budget = 60.0 * minutes
    started = time.monotonic()
    marks: dict[str, float] = {}
    logged: dict[int, float] = {}

    def timed(step: int, total: int, stats: dict) -> None:
        now = time.monotonic()
        if stats.get("stage") == "latent cache":
            marks.setdefault("cache_start", now)
            marks["cache_end"] = now
        elif "loss" in stats:
            logged[step] = now
            marks.setdefault("first_log", now)
        elif step == PROBE_STEPS:  # the validation after the last step
            marks["validated"] = now
        if progress:
            progress(step, total, stats)

    probe = replace(cfg, steps=PROBE_STEPS, log_every=PROBE_LOG_EVERY, save_every=PROBE_STEPS)
    out = main(probe, timed)
    ended = time.monotonic()

    first, last = min(logged), max(logged)
    step_time = (logged[last] - logged[first]) / (last - first)
    validated = marks.get("validated", logged[last])
    validation = validated - logged[last]
    cache = marks.get("cache_end", started) - marks.get("cache_start", started)
    before_steps = marks["first_log"] - started - first * step_time  # set-up, cache, validation
    times = ProbeTimes(
        step=step_time,
        validation=validation,
        save=ended - validated,
        setup=max(0.0, before_steps - cache - validation),
    )
    left = budget * (1 - MARGIN) - (ended - started)
    steps = plan_steps(PROBE_STEPS, left, times, cfg)
    if steps == PROBE_STEPS:
        return out
    return main(replace(cfg, steps=steps), progress)
