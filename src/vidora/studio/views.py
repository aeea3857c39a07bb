"""HTML for the studio's library cards and video details, written here rather than in JS.

Everything a user typed (prompts above all) is escaped before it reaches the page: a prompt
is data, never markup. Thumbnails are inlined as data URLs, so the library needs no file
route of its own and shows only what the owner's query returned.
"""

from __future__ import annotations

import base64
import html
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from vidora.server.jobs import COMPLETED, FAILED, IN_PROGRESS, QUEUED, Job

STATUS_TEXT = {
    QUEUED: "queued",
    IN_PROGRESS: "generating",
    COMPLETED: "completed",
    FAILED: "failed",
}

SIZE_NAMES = {1.0: "square", 1.5: "wide", 2 / 3: "tall"}


def size_label(size: str) -> str:
    """`96x64` -> `96x64 (wide)`, so the choice reads as what it is."""
    width, _, height = size.partition("x")
    try:
        ratio = int(width) / int(height)
    except (ValueError, ZeroDivisionError):
        return size
    name = next((n for r, n in SIZE_NAMES.items() if abs(r - ratio) < 1e-3), None)
    if name is None:
        name = "wide" if ratio > 1 else "tall"
    return f"{size} ({name})"


@lru_cache(maxsize=1024)
def _data_url(path: str, mtime_ns: int) -> str:
    media = "image/webp" if path.endswith(".webp") else "image/jpeg"
    return f"data:{media};base64," + base64.b64encode(Path(path).read_bytes()).decode()


def thumbnail_url(path: Path | None) -> str | None:
    """A data URL of a thumbnail (cached per file version); None if it is gone."""
    if path is None:
        return None
    try:
        return _data_url(str(path), path.stat().st_mtime_ns)
    except OSError:
        return None


def progress_text(job: Job) -> str:
    if job.status == IN_PROGRESS:
        return f"generating {job.progress}%"
    return STATUS_TEXT.get(job.status, job.status)


def library_html(
    jobs: list[tuple[Job, str | None]], selected: str | None, *, has_more: bool = False
) -> str:
    """The library grid: one clickable card per video (job, thumbnail data URL)."""
    if not jobs:
        return (
            '<div class="vd-empty">No videos yet. Write a prompt above and press '
            "<b>Generate</b>; your videos appear here.</div>"
        )
    cards = [_card(job, thumb, job.id == selected) for job, thumb in jobs]
    more = (
        '<div class="vd-more">Older videos are not shown here; the API lists them all '
        "(GET /v1/videos).</div>"
        if has_more
        else ""
    )
    return f'<div class="vd-grid">{"".join(cards)}</div>{more}'


def _card(job: Job, thumb: str | None, selected: bool) -> str:
    prompt = html.escape(job.prompt)
    status = html.escape(job.status)
    if thumb is not None:
        picture = f'<img class="vd-thumb" src="{thumb}" alt="thumbnail of {prompt}">'
    elif job.status == FAILED:
        picture = '<div class="vd-thumb vd-placeholder">failed</div>'
    else:
        percent = job.progress if job.status == IN_PROGRESS else 0
        label = f"{percent}%" if job.status == IN_PROGRESS else "waiting for the worker"
        picture = (
            '<div class="vd-thumb vd-placeholder">'
            f'<div class="vd-bar"><span style="width:{percent}%"></span></div>'
            f"<span>{label}</span></div>"
        )
    derived = ""
    if job.remixed_from_video_id:
        derived = " · remix"
    elif job.kind == "extend":
        derived = " · extended"
    error = ""
    if job.status == FAILED and job.error_message:
        error = f'<div class="vd-error">{html.escape(job.error_message)}</div>'
    classes = "vd-card vd-selected" if selected else "vd-card"
    return (
        f'<button type="button" class="{classes}" data-video-id="{html.escape(job.id)}" '
        f'data-status="{status}" title="{prompt}">'
        f"{picture}"
        f'<div class="vd-meta"><span class="vd-status vd-{status}">'
        f"{html.escape(progress_text(job))}</span>"
        f"<span>{job.total_seconds} s · {html.escape(job.size)}{derived}</span></div>"
        f'<div class="vd-prompt">{prompt}</div>{error}</button>'
    )


def reproduce_request(job: Job) -> tuple[str, dict[str, Any]]:
    """The API call that makes this video again: (method and path, JSON body)."""
    if job.kind == "extend" and job.source_video_id:
        return "POST /v1/videos/extensions", {
            "prompt": job.prompt,
            "seconds": str(job.seconds),
            "video": {"id": job.source_video_id},
            "seed": job.seed,
        }
    if job.kind == "edit" and job.source_video_id:
        return "POST /v1/videos/edits", {
            "prompt": job.prompt,
            "video": {"id": job.source_video_id},
            "seed": job.seed,
        }
    body: dict[str, Any] = {
        "model": job.model,
        "prompt": job.prompt,
        "size": job.size,
        "seconds": str(job.seconds),
        "seed": job.seed,
    }
    if job.negative_prompt:
        body["negative_prompt"] = job.negative_prompt
    if job.steps is not None:
        body["steps"] = job.steps
    if job.guidance is not None:
        body["guidance"] = job.guidance
    return "POST /v1/videos", body


def details_html(job: Job | None) -> str:
    """The exact prompt and settings the model received, and how to make the video again."""
    if job is None:
        return (
            '<div class="vd-details vd-muted">Pick a video in the library to play it, see the '
            "exact prompt and settings it was made with, download, remix or extend it.</div>"
        )
    model = html.escape(job.engine_model)
    if job.model != job.engine_model:
        model += f' <span class="vd-muted">(asked for as {html.escape(job.model)})</span>'
    seconds = f"{job.seconds} s"
    if job.kind == "extend":
        seconds = f"{job.seconds} s new, {job.total_seconds} s in all"
    first_frame = {
        "create": "your uploaded image" if job.has_first_frame else "none (text only)",
        "edit": "the source video's first frame",
        "extend": "continues the source video's last frames",
    }.get(job.kind, "none")
    rows = [
        ("Model", model),
        ("Size", html.escape(job.size)),
        ("Duration", seconds),
        ("Seed", str(job.seed)),
        ("Steps", str(job.steps) if job.steps is not None else "the model's default"),
        ("Guidance", f"{job.guidance:g}" if job.guidance is not None else "the model's default"),
        ("Negative prompt", html.escape(job.negative_prompt or "none")),
        ("Conditioning", first_frame),
    ]
    if job.remixed_from_video_id:
        rows.append(("Remix of", html.escape(job.remixed_from_video_id)))
    if job.source_video_id and job.kind in ("extend", "edit"):
        rows.append(("Made from", html.escape(job.source_video_id)))
    table = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows)
    status = html.escape(job.status)
    state = f'<span class="vd-status vd-{status}">{html.escape(progress_text(job))}</span>'
    error = ""
    if job.status == FAILED:
        code = html.escape(job.error_code or "failed")
        error = (
            f'<div class="vd-error">This video failed ({code}): '
            f"{html.escape(job.error_message or 'no reason given')}</div>"
        )
    endpoint, body = reproduce_request(job)
    note = ""
    if job.kind == "create" and job.has_first_frame:
        note = " (plus the same image as <code>input_reference</code>)"
    request = html.escape(json.dumps(body, indent=2, ensure_ascii=False))
    return (
        f'<div class="vd-details" data-video-id="{html.escape(job.id)}">'
        f'<div class="vd-head">{state} <code>{html.escape(job.id)}</code></div>{error}'
        '<div class="vd-label">Prompt, exactly as the model received it</div>'
        f'<pre class="vd-prompt-full">{html.escape(job.prompt)}</pre>'
        f'<table class="vd-settings">{table}</table>'
        f'<details class="vd-again"><summary>Make it again with the API: '
        f"<code>{endpoint}</code>{note}</summary><pre>{request}</pre></details></div>"
    )


STUDIO_CSS = """
.vd-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr));
  gap: 10px; }
.vd-card { display: flex; flex-direction: column; gap: 4px; padding: 6px; text-align: left;
  border: 1px solid var(--border-color-primary); border-radius: 8px; cursor: pointer;
  background: var(--background-fill-secondary); color: var(--body-text-color); font: inherit; }
.vd-card:hover { border-color: var(--color-accent); }
.vd-card.vd-selected { border: 2px solid var(--color-accent); padding: 5px; }
.vd-thumb { width: 100%; aspect-ratio: 3 / 2; object-fit: contain; border-radius: 4px;
  background: #0b0b0b; image-rendering: pixelated; }
.vd-placeholder { display: flex; flex-direction: column; align-items: center;
  justify-content: center; gap: 6px; color: #ddd; font-size: 0.85em; }
.vd-bar { width: 70%; height: 6px; background: #333; border-radius: 3px; overflow: hidden; }
.vd-bar span { display: block; height: 100%; background: var(--color-accent);
  transition: width 0.4s; }
.vd-meta { display: flex; justify-content: space-between; gap: 4px; font-size: 0.8em;
  color: var(--body-text-color-subdued); }
.vd-status { font-weight: 600; }
.vd-completed { color: #2e9d4f; }
.vd-failed { color: #d9423a; }
.vd-queued, .vd-in_progress { color: #c98a12; }
.vd-prompt { font-size: 0.85em; overflow: hidden; display: -webkit-box;
  -webkit-line-clamp: 2; -webkit-box-orient: vertical; }
.vd-error { font-size: 0.8em; color: #d9423a; }
.vd-empty, .vd-more, .vd-muted { color: var(--body-text-color-subdued); }
.vd-details pre { white-space: pre-wrap; word-break: break-word; margin: 4px 0 8px;
  padding: 6px 8px; border-radius: 6px; background: var(--background-fill-secondary); }
.vd-label { font-size: 0.85em; color: var(--body-text-color-subdued); margin-top: 6px; }
.vd-settings { font-size: 0.9em; border-collapse: collapse; }
.vd-settings, .vd-settings tr, .vd-settings th, .vd-settings td { border: none !important;
  background: none !important; padding: 1px 12px 1px 0 !important; text-align: left;
  vertical-align: top; }
.vd-settings th { font-weight: 600; white-space: nowrap; }
.vd-settings td, .vd-head code { overflow-wrap: anywhere; }
.vd-head code { font-size: 0.75em; }
.vd-again { font-size: 0.85em; margin-top: 6px; }
#vd-player video { image-rendering: pixelated; }
#vd-status:empty { display: none; }
"""
"""Styles for the cards and details; colours come from the gradio theme's variables."""
