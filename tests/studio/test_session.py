"""The studio's actions, called directly on a server's services in this process.

The same services the API uses, the deterministic fake engine from tests/server, and a
worker run one batch at a time by the test: every refusal must be a readable StudioError,
and every video must land in the same queue, under the same keys and limits, as the API's.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from harness import write_registry
from PIL import Image

from vidora.server.keys import ApiKey
from vidora.server.services import Services, build_services
from vidora.server.settings import Settings
from vidora.server.worker import Worker
from vidora.studio.session import Caller, CreateForm, Studio, StudioError
from vidora.studio.views import details_html
from vidora.weights import BUILTIN_MODEL


@dataclass
class Setup:
    studio: Studio
    services: Services
    worker: Worker

    def key(self, name: str, **limits: int) -> str:
        return self.services.keys.create(name, **limits)[1]

    def caller(self, key: str) -> Caller:
        return self.studio.sign_in(key)

    def work(self) -> None:
        """Generate every queued video (the worker takes one batch per round)."""
        while self.worker.run_once():
            pass


def _setup(root: Path, **overrides: object) -> Setup:
    root.mkdir(parents=True, exist_ok=True)
    values: dict[str, object] = {
        "data_dir": root / "data",
        "models_file": write_registry(root / "models.yaml"),
        "max_image_bytes": 50_000,
        "rpm_limit": 0,
    }
    values.update(overrides)
    settings = Settings(**values)  # type: ignore[arg-type]
    services = build_services(settings)
    worker = Worker(settings, services.registry, services.queue, services.storage)
    return Setup(Studio(services), services, worker)


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., Setup]]:
    made: list[Setup] = []

    def factory(**overrides: object) -> Setup:
        setup = _setup(tmp_path / f"s{len(made)}", **overrides)
        made.append(setup)
        return setup

    yield factory
    for setup in made:
        setup.services.db.dispose()


@pytest.fixture
def setup(make: Callable[..., Setup]) -> Setup:
    return make()


def png(width: int, height: int, noise: bool = False) -> bytes:
    rng = np.random.default_rng(0)
    pixels = (
        rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        if noise
        else np.full((height, width, 3), (200, 30, 30), dtype=np.uint8)
    )
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def refusal(action: Callable[[], object]) -> str:
    with pytest.raises(StudioError) as caught:
        action()
    message = str(caught.value)
    assert message and "Traceback" not in message
    return message


# --- signing in ------------------------------------------------------------------------------


def test_sign_in_refuses_missing_wrong_and_revoked_keys_with_a_message(setup: Setup) -> None:
    key = setup.key("alice")
    assert "Paste your API key" in refusal(lambda: setup.studio.sign_in("  "))
    assert "Incorrect API key" in refusal(lambda: setup.studio.sign_in("sk-vidora-nope"))
    assert "Incorrect API key" in refusal(lambda: setup.studio.sign_in(key[:-3] + "xyz"))
    caller = setup.studio.sign_in(f"  {key}\n")  # pasted with whitespace around it
    assert caller.name == "alice" and isinstance(caller.key, ApiKey)

    setup.services.keys.revoke("alice")  # an open page stops working at its next action
    assert "revoked" in refusal(lambda: setup.studio.caller(key))
    assert "Sign in" in refusal(lambda: setup.studio.caller(None))


def test_actions_count_against_the_keys_requests_per_minute_but_refreshes_do_not(
    setup: Setup,
) -> None:
    key = setup.key("bob", rpm_limit=2)
    setup.studio.sign_in(key)  # 1
    setup.studio.create(setup.studio.caller(key), CreateForm(prompt="a red circle"))  # 2
    for _ in range(5):
        setup.studio.caller(key, count=False)  # the page's timer
    assert "Rate limit reached" in refusal(lambda: setup.studio.caller(key))


def test_with_auth_off_there_is_no_sign_in_and_videos_have_no_owner(
    make: Callable[..., Setup],
) -> None:
    setup = make(auth=False)
    caller = setup.studio.sign_in(None)
    assert caller.key is None and caller.owner is None
    job = setup.studio.create(caller, CreateForm(prompt="a blue square"))
    assert job.key_id is None
    assert [j.id for j in setup.studio.library(caller).videos] == [job.id]


# --- creating --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "says"),
    [
        (CreateForm(prompt=""), "Write a prompt first"),
        (CreateForm(prompt="   \n"), "Write a prompt first"),
        (
            CreateForm(prompt="a cat", size="10x10"),
            f"Size: '10x10' is not supported by {BUILTIN_MODEL}; use one of: 64x64, 96x64, 64x96",
        ),
        (CreateForm(prompt="a cat", seconds=5), "Duration: 5 seconds is not supported"),
        (CreateForm(prompt="a cat", model="sora-3"), "Model: 'sora-3' is not a model"),
        (CreateForm(prompt="a cat", seed=1.5), "Seed must be a whole number"),
        (CreateForm(prompt="a cat", seed=-1), "Seed: "),
        (CreateForm(prompt="a cat", steps=0), "Steps: "),
        (CreateForm(prompt="a cat", guidance=99.0), "Guidance: "),
        (CreateForm(prompt="a\x00cat"), "Prompt: must not contain NUL"),
    ],
)
def test_bad_create_input_is_refused_with_a_readable_message(
    setup: Setup, form: CreateForm, says: str
) -> None:
    caller = setup.caller(setup.key("carol"))
    assert says in refusal(lambda: setup.studio.create(caller, form))
    assert setup.studio.library(caller).videos == []  # nothing was queued


def test_oversized_and_unreadable_first_frames_are_refused(setup: Setup, tmp_path: Path) -> None:
    caller = setup.caller(setup.key("dave"))
    big = tmp_path / "big.png"
    big.write_bytes(png(200, 200, noise=True))
    assert big.stat().st_size > 50_000
    message = refusal(lambda: setup.studio.create(caller, CreateForm("a cat", image_path=str(big))))
    assert message.startswith("The first-frame image is 118 KB; the limit is 49 KB")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    message = refusal(
        lambda: setup.studio.create(caller, CreateForm("a cat", image_path=str(text)))
    )
    assert message == "First-frame image: not a readable image (jpeg, png or webp)."
    gone = str(tmp_path / "missing.png")
    assert "could not be read" in refusal(
        lambda: setup.studio.create(caller, CreateForm("a cat", image_path=gone))
    )
    assert setup.studio.library(caller).videos == []


def test_a_create_is_an_api_job_with_every_setting_the_model_will_receive(
    setup: Setup, tmp_path: Path
) -> None:
    key = setup.key("erin")
    caller = setup.caller(key)
    image = tmp_path / "first.png"
    image.write_bytes(png(80, 40))
    form = CreateForm(
        prompt="a red circle moving right",
        model=BUILTIN_MODEL,
        size="96x64",
        seconds="8",
        seed=1234.0,
        steps=7.0,
        guidance=2.5,
        negative_prompt="  blurry ",
        image_path=str(image),
    )
    job = setup.studio.create(caller, form)
    # The API sees the very same job for the same key.
    same = setup.services.videos.retrieve(caller.key, job.id)
    assert (same.key_id, same.prompt, same.size, same.seconds) == (
        caller.owner,
        "a red circle moving right",
        "96x64",
        8,
    )
    assert (same.seed, same.steps, same.guidance, same.negative_prompt) == (1234, 7, 2.5, "blurry")
    assert same.has_first_frame
    assert setup.services.storage.load_first_frame(job.id).shape == (64, 96, 3)  # fitted

    details = details_html(same)
    for shown in ("a red circle moving right", "96x64", "1234", "7", "2.5", "blurry"):
        assert shown in details
    assert "your uploaded image" in details and "input_reference" in details


def test_the_keys_limits_and_the_studios_own_cap_apply(make: Callable[..., Setup]) -> None:
    setup = make(studio_in_flight_limit=2)
    one = setup.caller(setup.key("one", in_flight_limit=1))
    setup.studio.create(one, CreateForm("a cat"))
    assert "(limit 1)" in refusal(lambda: setup.studio.create(one, CreateForm("a dog")))

    many = setup.caller(setup.key("many", in_flight_limit=0))
    setup.studio.create(many, CreateForm("a cat"))
    setup.studio.create(many, CreateForm("a dog"))
    assert "the studio allows 2 at a time" in refusal(
        lambda: setup.studio.create(many, CreateForm("a bird"))
    )

    daily = setup.caller(setup.key("daily", seconds_per_day_limit=4))
    setup.studio.create(daily, CreateForm("a cat", seconds=4))
    assert "seconds of video per day" in refusal(
        lambda: setup.studio.create(daily, CreateForm("a dog", seconds=4))
    )
    setup.work()  # finished jobs free the studio's slots
    setup.studio.create(many, CreateForm("a bird"))


# --- the library and what is made from it -----------------------------------------------------


def test_the_library_is_newest_first_and_private_to_its_key(setup: Setup) -> None:
    alice = setup.caller(setup.key("alice"))
    bob = setup.caller(setup.key("bob"))
    first = setup.studio.create(alice, CreateForm("one"))
    second = setup.studio.create(alice, CreateForm("two"))
    theirs = setup.studio.create(bob, CreateForm("bob's"))
    library = setup.studio.library(alice)
    assert [j.id for j in library.videos] == [second.id, first.id]
    assert library.in_flight == 2 and not library.has_more
    for action in (
        lambda: setup.studio.video(alice, theirs.id),
        lambda: setup.studio.remix(alice, theirs.id, "mine now"),
        lambda: setup.studio.delete(alice, theirs.id),
    ):
        assert f"No video found with id '{theirs.id}'" in refusal(action)


def test_remix_extend_download_and_delete(setup: Setup) -> None:
    caller = setup.caller(setup.key("frank"))
    source = setup.studio.create(caller, CreateForm("a red circle", seed=42.0))
    assert "only a completed video" in refusal(
        lambda: setup.studio.remix(caller, source.id, "a blue circle")
    )
    assert "content can be downloaded once it is completed" in refusal(
        lambda: setup.studio.file(caller, source.id, "video")
    )
    setup.work()
    for variant in ("video", "thumbnail", "spritesheet"):
        assert setup.studio.file(caller, source.id, variant).stat().st_size > 0
    done = setup.studio.video(caller, source.id)
    assert setup.studio.thumbnail_path(done) is not None

    assert "Write the new prompt" in refusal(lambda: setup.studio.remix(caller, source.id, " "))
    remix = setup.studio.remix(caller, source.id, "a blue circle")
    assert (remix.seed, remix.remixed_from_video_id, remix.prompt) == (
        42,
        source.id,
        "a blue circle",
    )
    extension = setup.studio.extend(caller, source.id, "it keeps going")
    assert (extension.kind, extension.seconds, extension.total_seconds) == ("extend", 4, 8)
    assert extension.source_video_id == source.id
    setup.work()
    assert {setup.studio.video(caller, j.id).status for j in (remix, extension)} == {"completed"}

    setup.studio.delete(caller, source.id)
    assert source.id not in [j.id for j in setup.studio.library(caller).videos]
    assert "No video found" in refusal(lambda: setup.studio.file(caller, source.id, "video"))
    assert not (setup.services.settings.data_dir / "files" / source.id).exists()


def test_a_failed_video_says_why(setup: Setup) -> None:
    caller = setup.caller(setup.key("gina"))
    job = setup.studio.create(caller, CreateForm("<b>[fail]</b>"))  # the fake engine raises
    setup.work()
    failed = setup.studio.video(caller, job.id)
    assert failed.status == "failed" and failed.error_code == "generation_failed"
    details = details_html(failed)
    assert "the fake engine was asked to fail" in details
    assert "<b>[fail]</b>" not in details and "&lt;b&gt;[fail]&lt;/b&gt;" in details
    assert setup.studio.thumbnail_path(failed) is None
    assert "only a completed video" in refusal(lambda: setup.studio.extend(caller, job.id, "more"))


# --- the page's handlers ---------------------------------------------------------------------


def test_a_refresh_never_undoes_a_clicks_selection(make: Callable[..., Setup]) -> None:
    """The page's timer and load run concurrently with a click: a refresh that started before a
    click finished carries the old selection, and must not write it back over the click's."""
    from vidora.studio.app import build_studio

    setup = make(auth=False)
    demo = build_studio(setup.services)
    handlers = {f.fn.__name__: f for f in demo.fns.values()}
    generate, tick, load = handlers["on_generate"], handlers["on_tick"], handlers["on_load"]
    selected, details = tick.inputs[1], next(c for c in tick.outputs if c.elem_id == "vd-details")

    form = ("a green square moving up", BUILTIN_MODEL, "64x64", 4, None, None, None, "", None)
    clicked = generate.fn(None, *form, "", "")
    job_id = clicked[selected]
    assert "a green square moving up" in clicked[details]

    stale = tick.fn(None, None, "", "")  # started with the selection from before the click
    assert selected not in stale
    late = load.fn("", "")  # the page's load, when it ends after the click
    assert selected not in late and selected not in load.outputs
    fresh = tick.fn(None, job_id, "", "")
    assert selected not in fresh and "a green square moving up" in fresh[details]
