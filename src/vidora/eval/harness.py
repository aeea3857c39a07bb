"""Runs any text-to-video generator over Shapes World splits and judges every video.

The prompts of a split are the captions of `get_clip(split, i, seed)` for i < n and each
seed in `seeds`; the generator gets (caption, the clip's size, seed) and returns frames.
Every video is judged against the clip's scene, the exact truth its caption was written
from, so a mistake of the caption parser can never be counted against a model.

A generator is any callable `(prompt, size, seed) -> frames (T, H, W, 3) uint8`. One that
also has `generate_batch(prompts, sizes, seeds) -> list[frames]` is fed batches of one size
(a model runs a batch far faster than its items one by one).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from vidora.eval.report import SheetEntry, save_contact_sheet, write_metrics
from vidora.world.judge import Verdict, judge, scene_prompt
from vidora.world.spec import MOTIONS, SIZES, SPLITS
from vidora.world.splits import Clip, get_clip

Generator = Callable[[str, str, int], np.ndarray]
"""(prompt, size "WxH", seed) -> frames (T, H, W, 3) uint8."""

EVAL_SPLITS: tuple[str, ...] = ("eval-seen", "eval-wording", "eval-composition")
"""The splits a model is scored on by default (train is there for checking overfitting)."""


@dataclass(frozen=True)
class Sample:
    """One judged video: which clip's prompt it answers and the judge's verdict."""

    clip: Clip
    verdict: Verdict

    @property
    def prompt(self) -> str:
        return self.clip.caption

    @property
    def size(self) -> str:
        return self.clip.scene.size

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.clip.split,
            "index": self.clip.index,
            "seed": self.clip.seed,
            "prompt": self.prompt,
            "size": self.size,
            "verdict": self.verdict.to_dict(),
        }


def split_clips(split: str, n: int, seeds: Sequence[int]) -> list[Clip]:
    """The clips whose captions are a split's prompts: n per seed, seed by seed."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    return [get_clip(split, index, seed) for seed in seeds for index in range(n)]


def _check_frames(frames: Any, clip: Clip) -> np.ndarray:
    array = np.asarray(frames)
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8 or not len(array):
        raise ValueError(
            f"the generator must return frames (T, H, W, 3) uint8, got "
            f"{array.dtype} {array.shape} for prompt {clip.caption!r} ({clip.scene.size})"
        )
    return array


def _generate(
    generator: Generator, clips: list[Clip], batch_size: int
) -> Iterator[tuple[int, np.ndarray]]:
    """Yields (position in clips, frames); batched by size when the generator can batch."""
    generate_batch = getattr(generator, "generate_batch", None)
    if not callable(generate_batch):
        for position, clip in enumerate(clips):
            yield position, _check_frames(generator(clip.caption, clip.scene.size, clip.seed), clip)
        return
    by_size: dict[str, list[int]] = defaultdict(list)
    for position, clip in enumerate(clips):
        by_size[clip.scene.size].append(position)
    for positions in by_size.values():
        for start in range(0, len(positions), batch_size):
            batch = positions[start : start + batch_size]
            videos = generate_batch(
                [clips[p].caption for p in batch],
                [clips[p].scene.size for p in batch],
                [clips[p].seed for p in batch],
            )
            if len(videos) != len(batch):
                raise ValueError(
                    f"generate_batch returned {len(videos)} videos for {len(batch)} prompts"
                )
            for position, frames in zip(batch, videos, strict=True):
                yield position, _check_frames(frames, clips[position])


def _share(hits: Sequence[bool]) -> float | None:
    """Mean of booleans; None (not 0) when there is nothing to count."""
    return float(np.mean(hits)) if len(hits) else None


def binding(samples: Sequence[Sample], attribute: str) -> dict[str, int | float | None]:
    """Whose `attribute` ('shape' or 'motion') each object of a two-object video shows, where
    the prompt gives its two objects different ones: its own, the other object's, or neither
    (found objects with a detected value only). `own_share` is own / (own + other): 0.5 when a
    generator hears both words but does not bind them, 1 when it binds them. Of the `videos`
    where both objects are read, `one_for_both` show one prompted value on both objects: the
    scene's shape or motion, not each object's."""
    counts = {"own": 0, "other": 0, "neither": 0}
    videos = one_for_both = 0
    for sample in samples:
        if len(sample.verdict.objects) != 2:
            continue
        first, second = sample.verdict.objects
        if getattr(first, attribute) == getattr(second, attribute):
            continue
        shown = []
        for obj, other in ((first, second), (second, first)):
            value = getattr(obj, f"detected_{attribute}") if obj.found else None
            if value is None:
                continue
            wanted, theirs = getattr(obj, attribute), getattr(other, attribute)
            counts["own" if value == wanted else "other" if value == theirs else "neither"] += 1
            shown.append(value)
        if len(shown) == 2:
            videos += 1
            prompted = {getattr(first, attribute), getattr(second, attribute)}
            one_for_both += shown[0] == shown[1] and shown[0] in prompted
    told = counts["own"] + counts["other"]
    return {
        **counts,
        "own_share": counts["own"] / told if told else None,
        "videos": videos,
        "one_for_both": one_for_both,
    }


def split_metrics(samples: Sequence[Sample]) -> dict[str, Any]:
    """Per-attribute accuracy, adherence and consistency over one split's samples.

    Attribute accuracies count prompted objects (see vidora.world.judge); adherence counts
    videos; two-object adherence is adherence over the two-object prompts alone; binding says
    whether a two-object video gives each object its own shape and motion (`binding`).
    """
    objects = [obj for sample in samples for obj in sample.verdict.objects]
    two = [s.verdict.adheres for s in samples if len(s.verdict.objects) == 2]
    one = [s.verdict.adheres for s in samples if len(s.verdict.objects) == 1]
    by_size = {
        size: [s.verdict.adheres for s in samples if s.size == size]
        for size in SIZES
        if any(s.size == size for s in samples)
    }
    by_seed: dict[int, list[bool]] = defaultdict(list)
    for sample in samples:
        by_seed[sample.clip.seed].append(sample.verdict.adheres)
    by_motion = {
        motion: [o.found and o.motion_ok for o in objects if o.motion == motion]
        for motion in MOTIONS
        if any(o.motion == motion for o in objects)
    }
    return {
        "samples": len(samples),
        "objects": len(objects),
        "two_object_samples": len(two),
        "colour_accuracy": _share([o.found for o in objects]),
        "shape_accuracy": _share([o.found and o.shape_ok for o in objects]),
        "motion_accuracy": _share([o.found and o.motion_ok for o in objects]),
        "adherence": _share([s.verdict.adheres for s in samples]),
        "consistency": float(np.mean([o.consistency for o in objects])) if objects else None,
        "one_object_adherence": _share(one),
        "two_object_adherence": _share(two),
        "background_accuracy": _share([bool(s.verdict.background_ok) for s in samples]),
        "video_size_match": _share([s.verdict.size == s.size for s in samples]),
        "adherence_by_size": {
            size: {"samples": len(hits), "adherence": _share(hits)}
            for size, hits in by_size.items()
        },
        "adherence_by_seed": {str(seed): _share(hits) for seed, hits in by_seed.items()},
        "motion_accuracy_by_motion": {m: _share(hits) for m, hits in by_motion.items()},
        "binding": {a: binding(samples, a) for a in ("shape", "motion")},
    }


def _generator_name(generator: Generator) -> str:
    name = getattr(generator, "name", None) or getattr(generator, "__name__", None)
    return str(name or type(generator).__name__)


def evaluate(
    generator: Generator,
    splits: Sequence[str] = EVAL_SPLITS,
    n: int = 200,
    seeds: Sequence[int] = (0, 1, 2),
    out_dir: Path | str = Path("eval-out"),
    batch_size: int = 8,
    progress: bool = True,
    sheet_samples: int = 8,
) -> dict[str, Any]:
    """Generates a video per prompt of each split, judges it, and writes the report.

    Writes out_dir/metrics.json (returned too), out_dir/samples_<split>.png (a contact
    sheet of the first `sheet_samples` videos with prompt and verdict) and
    out_dir/verdicts_<split>.jsonl (every verdict, for digging into failures).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    plan = {split: split_clips(split, n, seeds) for split in splits}  # checks the arguments
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, Any] = {
        "generator": _generator_name(generator),
        "n": n,
        "seeds": list(seeds),
        "splits": {},
    }
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not progress) as bar:
        for split, clips in plan.items():
            task = bar.add_task(f"judging {split}", total=len(clips))
            samples: list[Sample | None] = [None] * len(clips)
            sheet: dict[int, SheetEntry] = {}
            for position, frames in _generate(generator, clips, batch_size):
                clip = clips[position]
                verdict = judge(frames, scene_prompt(clip.scene))
                samples[position] = Sample(clip, verdict)
                if position < sheet_samples:
                    sheet[position] = SheetEntry(frames, clip.caption, verdict)
                bar.advance(task)
            done = [s for s in samples if s is not None]
            metrics["splits"][split] = split_metrics(done)
            save_contact_sheet(out / f"samples_{split}.png", [sheet[p] for p in sorted(sheet)])
            with open(out / f"verdicts_{split}.jsonl", "w", encoding="utf-8") as file:
                for sample in done:
                    file.write(json.dumps(sample.to_dict()) + "\n")
    write_metrics(out / "metrics.json", metrics)
    return metrics
