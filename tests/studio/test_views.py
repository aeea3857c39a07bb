"""The studio's HTML: user text is escaped, every setting is shown, the API call is exact."""

from __future__ import annotations

import html
import json
import re
from dataclasses import replace

import pytest

from vidora.server.jobs import Job
from vidora.studio.views import details_html, library_html, reproduce_request, size_label
from vidora.weights import BUILTIN_MODEL

EVIL = '<img src=x onerror="alert(1)"> & "quotes"'


def job(**changes: object) -> Job:
    base = Job(
        seq=1,
        id="video_" + "a" * 32,
        key_id="k",
        kind="create",
        model="sora-2",
        engine_model=BUILTIN_MODEL,
        prompt="a red circle moving right",
        negative_prompt=None,
        size="96x64",
        seconds=4,
        total_seconds=4,
        seed=7,
        steps=None,
        guidance=None,
        has_first_frame=False,
        has_extend_from=False,
        remixed_from_video_id=None,
        source_video_id=None,
        status="completed",
        progress=100,
        error_code=None,
        error_message=None,
        created_at=0.0,
        started_at=0.0,
        completed_at=1.0,
        expires_at=2.0,
        attempts=1,
        claim_token=None,
        lease_owner=None,
        lease_expires_at=None,
        output_dir="attempt",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_prompts_and_errors_are_escaped_everywhere() -> None:
    bad = job(prompt=EVIL, negative_prompt=EVIL, status="failed", error_message=EVIL)
    for page in (library_html([(bad, None)], None), details_html(bad)):
        assert "<img src=x" not in page and 'onerror="alert' not in page
        assert html.escape(EVIL) in page


@pytest.mark.parametrize(
    ("status", "progress", "shows"),
    [("queued", 0, "waiting for the worker"), ("in_progress", 42, "generating 42%")],
)
def test_cards_show_status_and_live_progress(status: str, progress: int, shows: str) -> None:
    page = library_html([(job(status=status, progress=progress, output_dir=None), None)], None)
    assert shows in page and f'data-status="{status}"' in page
    if status == "in_progress":
        assert 'style="width:42%"' in page


def test_the_library_marks_the_selection_and_shows_thumbnails_newest_first() -> None:
    older = job(id="video_" + "1" * 32, prompt="older")
    newer = job(id="video_" + "2" * 32, prompt="newer", remixed_from_video_id=older.id)
    page = library_html(
        [(newer, "data:image/webp;base64,AAAA"), (older, None)], older.id, has_more=True
    )
    ids = re.findall(r'data-video-id="(video_\w+)"', page)
    assert ids == [newer.id, older.id]
    assert page.count("vd-selected") == 1
    assert re.search(r'vd-selected" data-video-id="' + older.id, page)
    assert 'src="data:image/webp;base64,AAAA"' in page and "remix" in page
    assert "Older videos are not shown" in page
    assert "No videos yet" in library_html([], None)


def test_details_show_every_setting_the_model_received() -> None:
    page = details_html(job(steps=12, guidance=3.5, negative_prompt="blurry", has_first_frame=True))
    for shown in ("a red circle moving right", BUILTIN_MODEL, "sora-2", "96x64", "4 s"):
        assert shown in page
    assert ">7<" in page and ">12<" in page and ">3.5<" in page and "blurry" in page
    assert "your uploaded image" in page
    defaults = details_html(job())
    assert defaults.count("the model's default") == 2  # steps and guidance left to the model
    assert "Pick a video" in details_html(None)


def test_the_reproduce_request_is_the_api_call_that_makes_the_video_again() -> None:
    assert reproduce_request(job(steps=12, negative_prompt="blurry")) == (
        "POST /v1/videos",
        {
            "model": "sora-2",
            "prompt": "a red circle moving right",
            "size": "96x64",
            "seconds": "4",
            "seed": 7,
            "negative_prompt": "blurry",
            "steps": 12,
        },
    )
    source = "video_" + "b" * 32
    extension = job(kind="extend", seconds=4, total_seconds=8, source_video_id=source)
    endpoint, body = reproduce_request(extension)
    assert endpoint == "POST /v1/videos/extensions"
    assert body == {
        "prompt": "a red circle moving right",
        "seconds": "4",
        "video": {"id": source},
        "seed": 7,
    }
    shown = details_html(extension)
    assert "4 s new, 8 s in all" in shown
    assert html.escape(json.dumps(body, indent=2)) in shown


def test_size_labels_say_the_shape() -> None:
    assert [size_label(s) for s in ("64x64", "96x64", "64x96", "128x72", "odd")] == [
        "64x64 (square)",
        "96x64 (wide)",
        "64x96 (tall)",
        "128x72 (wide)",
        "odd",
    ]
