"""Is one model better than another, or did the prompts' draw decide? A paired comparison.

Two `vidora eval` runs with the same splits, seeds and count judge the same prompts, so their
verdicts pair up prompt by prompt. What matters is the prompts one model gets right and the
other does not: McNemar's exact test asks whether that split could be a fair coin's, and a
bootstrap over the prompts gives the spread of the difference in whole prompts right.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

Key = tuple[str, int, int]
"""(split, seed, index): one prompt of the protocol."""


def load_verdicts(run_dir: str | Path) -> dict[Key, tuple[str, bool]]:
    """Every prompt of an eval run's `verdicts_<split>.jsonl` files: its caption and verdict."""
    files = sorted(Path(run_dir).glob("verdicts_*.jsonl"))
    if not files:
        raise FileNotFoundError(
            f"{run_dir} holds no verdicts_<split>.jsonl; is it a `vidora eval -o` folder?"
        )
    verdicts: dict[Key, tuple[str, bool]] = {}
    for file in files:
        for line in file.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            key = (row["split"], int(row["seed"]), int(row["index"]))
            verdicts[key] = (row["prompt"], bool(row["verdict"]["adheres"]))
    return verdicts


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: how likely a split this uneven is from a fair coin."""
    discordant = only_a + only_b
    if discordant == 0:
        return 1.0
    tail = sum(math.comb(discordant, i) for i in range(min(only_a, only_b) + 1))
    return min(1.0, 2 * tail / 2**discordant)


def compare_runs(
    a_dir: str | Path, b_dir: str | Path, resamples: int = 4000, seed: int = 0
) -> dict:
    """Per split and over all: whole prompts right for A and B, who alone got which, and
    whether the difference A - B is more than the prompts' draw moves."""
    a, b = load_verdicts(a_dir), load_verdicts(b_dir)
    keys = sorted(set(a) & set(b))
    if not keys:
        raise ValueError(f"{a_dir} and {b_dir} judged no prompt in common (splits, seeds, count)")
    changed = next((k for k in keys if a[k][0] != b[k][0]), None)
    if changed is not None:
        split, s, i = changed
        raise ValueError(
            f"the runs judged different prompts ({split}, seed {s}, prompt {i}: "
            f"{a[changed][0]!r} against {b[changed][0]!r}); compare runs of one protocol"
        )
    rng = np.random.default_rng(seed)
    report: dict = {"a": str(a_dir), "b": str(b_dir), "splits": {}}
    for split in sorted({k[0] for k in keys}) + ["all"]:
        chosen = [k for k in keys if split in ("all", k[0])]
        right_a = np.array([a[k][1] for k in chosen])
        right_b = np.array([b[k][1] for k in chosen])
        only_a = int((right_a & ~right_b).sum())
        only_b = int((right_b & ~right_a).sum())
        # Resample prompts with replacement; the difference is counted on each resample.
        diff = (right_a.astype(int) - right_b.astype(int))[
            rng.integers(0, len(chosen), (resamples, len(chosen)))
        ].sum(1)
        low, high = np.percentile(diff, [2.5, 97.5])
        report["splits"][split] = {
            "prompts": len(chosen),
            "a_right": int(right_a.sum()),
            "b_right": int(right_b.sum()),
            "both_right": int((right_a & right_b).sum()),
            "only_a": only_a,
            "only_b": only_b,
            "difference": only_a - only_b,
            "mcnemar_p": mcnemar_p(only_a, only_b),
            "difference_sd": float(diff.std()),
            "difference_95": [float(low), float(high)],
        }
    return report
