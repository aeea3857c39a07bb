"""What an evaluation leaves behind for people: metrics JSON, contact sheets, a table.

A contact sheet shows a few videos as rows of frames spread over the clip, each with its
prompt and the judge's verdict underneath, so a number like "motion 0.41" can be checked
by eye in seconds.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from rich.table import Table

from vidora.world.judge import Verdict

ZOOM = 2
"""Frames are enlarged this many times (nearest neighbour), so 64 px objects read easily."""

FRAMES_PER_ROW = 8
"""Frames shown per video, evenly spaced from the first to the last."""

_PAD = 6
_LINE = 16
_SHEET_BACKGROUND = (24, 24, 28)
_TEXT = (230, 230, 230)
_GOOD = (90, 210, 110)
_BAD = (240, 90, 90)


@dataclass(frozen=True)
class SheetEntry:
    """One row of a contact sheet."""

    frames: np.ndarray
    """(T, H, W, 3) uint8."""
    prompt: str
    verdict: Verdict


def write_metrics(path: Path | str, metrics: dict[str, Any]) -> Path:
    """Writes metrics as indented JSON; returns the path."""
    path = Path(path)
    path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return path


def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=13)


def contact_sheet(
    entries: Sequence[SheetEntry], frames_per_row: int = FRAMES_PER_ROW
) -> Image.Image:
    """A grid image: per entry, a row of frames, then its prompt and verdict."""
    font = _font()
    if not entries:
        image = Image.new("RGB", (320, 40), _SHEET_BACKGROUND)
        ImageDraw.Draw(image).text((_PAD, _PAD), "no samples", fill=_TEXT, font=font)
        return image
    cell_w = max(e.frames.shape[2] for e in entries) * ZOOM
    cell_h = max(e.frames.shape[1] for e in entries) * ZOOM
    width = _PAD + frames_per_row * (cell_w + _PAD)
    wrap = max(20, int(width / 7))  # characters per text line, for a ~7 px wide glyph
    blocks = []
    for entry in entries:
        lines = textwrap.wrap(entry.prompt, wrap) or [""]
        verdict = entry.verdict.summary()
        blocks.append((entry, lines, textwrap.wrap(verdict, wrap)))
    height = _PAD + sum(cell_h + _PAD + _LINE * (len(p) + len(v)) + _PAD for _, p, v in blocks)
    sheet = Image.new("RGB", (width, height), _SHEET_BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    y = _PAD
    for entry, prompt_lines, verdict_lines in blocks:
        frames = entry.frames
        picks = np.unique(np.linspace(0, len(frames) - 1, frames_per_row).round().astype(int))
        for column, t in enumerate(picks):
            image = Image.fromarray(frames[t]).resize(
                (frames.shape[2] * ZOOM, frames.shape[1] * ZOOM), Image.Resampling.NEAREST
            )
            x = _PAD + column * (cell_w + _PAD) + (cell_w - image.width) // 2
            sheet.paste(image, (x, y + (cell_h - image.height) // 2))
        y += cell_h + _PAD
        for line in prompt_lines:
            draw.text((_PAD, y), line, fill=_TEXT, font=font)
            y += _LINE
        colour = _GOOD if entry.verdict.adheres else _BAD
        for line in verdict_lines:
            draw.text((_PAD, y), line, fill=colour, font=font)
            y += _LINE
        y += _PAD
    return sheet


def save_contact_sheet(path: Path | str, entries: Sequence[SheetEntry]) -> Path:
    """Writes `contact_sheet(entries)` as PNG; returns the path."""
    path = Path(path)
    contact_sheet(entries).save(path, format="PNG")
    return path


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def metrics_table(metrics: dict[str, Any]) -> Table:
    """The headline numbers of `evaluate`'s metrics, one row per split, for the terminal; bound:
    how often a two-object video gives an object its own shape or motion rather than the other
    object's (50% is chance)."""
    table = Table(title=f"Shapes World judge: {metrics.get('generator', '')}")
    columns = (
        ("colour", "colour_accuracy"),
        ("shape", "shape_accuracy"),
        ("motion", "motion_accuracy"),
        ("adherence", "adherence"),
        ("2-object", "two_object_adherence"),
        ("consistency", "consistency"),
    )
    table.add_column("split")
    table.add_column("videos", justify="right")
    for title, _ in columns:
        table.add_column(title, justify="right")
    table.add_column("bound (shape / motion)", justify="right")
    for split, values in metrics["splits"].items():
        shares = [
            values.get("binding", {}).get(a, {}).get("own_share") for a in ("shape", "motion")
        ]
        bound = " / ".join(map(_percent, shares))
        row = [_percent(values[key]) for _, key in columns]
        table.add_row(split, str(values["samples"]), *row, bound)
    return table
