"""The studio in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright
against a real `vidora serve`, the way a person uses it.

The main test generates with the built-in model when its weights are installed, and with the
tiny random engine otherwise (the weights are trained separately); it says which. It saves a
screenshot under the test's tmp dir and prints the path; with VIDORA_STUDIO_SCREENSHOT=PATH
it also queues a few more prompts and writes the screenshot there (the README's image).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from harness import TINY_ENGINE, Deployment
from PIL import Image
from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from vidora.weights import BUILTIN_MODEL

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}
MAX_IMAGE = 100_000
"""The server's image limit in these tests, so an oversized upload stays small."""
WAIT_MS = 180_000
"""Longest wait for one video: the built-in model on a busy CPU."""
EXTRA_PROMPTS = (
    "a yellow triangle bouncing on a navy background",
    "a small green square moving up on a gray background",
    "a large purple circle moving left on a black background",
)
"""Queued only for the README screenshot, so its library has more in it."""

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def engine_choice() -> tuple[str | None, str]:
    """(engine for the test registry, None for the built-in registry; words for the log)."""
    from vidora.pipelines.text_to_video import builtin_weights

    try:
        weights = builtin_weights()
    except FileNotFoundError:
        return TINY_ENGINE, "the tiny random engine (the built-in weights are not installed yet)"
    return None, f"the built-in model {BUILTIN_MODEL} ({weights})"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def start(tmp_path: Path, *args: str, engine: str | None, timeout: float = 60) -> Deployment:
    deployment = Deployment(tmp_path, engine=engine)
    deployment.server(
        *args,
        env={"GRADIO_TEMP_DIR": str(tmp_path / "gradio"), "VIDORA_MAX_IMAGE_BYTES": str(MAX_IMAGE)},
        timeout=timeout,
    )
    return deployment


def open_studio(browser: Browser, deployment: Deployment) -> Page:
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(30_000)
    page.goto(deployment.procs[0].url + "/studio/")
    return page


def sign_in(page: Page, key: str) -> None:
    page.locator("#vd-key input").fill(key)
    page.locator("#vd-sign-in").click()


def completed_cards(page: Page, count: int) -> None:
    page.wait_for_function(
        f"document.querySelectorAll('#vd-library [data-status=completed]').length >= {count}",
        timeout=WAIT_MS,
    )


def expect_text(page: Page, selector: str, text: str) -> None:
    page.locator(selector).filter(has_text=text).wait_for()


def test_sign_in_generate_play_remix_and_find_both_in_the_library(
    tmp_path: Path, browser: Browser, capsys: pytest.CaptureFixture[str]
) -> None:
    engine, which = engine_choice()
    with capsys.disabled():
        print(f"\n[studio e2e] generating with {which}")
    deployment = start(tmp_path, engine=engine, timeout=180)
    try:
        key = deployment.key("studio-e2e")
        page = open_studio(browser, deployment)

        # A wrong key is refused with the API's message, then the right one signs in.
        sign_in(page, "sk-vidora-000000000000-not-a-real-key")
        expect_text(page, "#vd-sign-in-msg", "Incorrect API key provided")
        sign_in(page, key)
        expect_text(page, "#vd-who", "Signed in as studio-e2e")
        assert page.locator("#vd-key").is_hidden()

        # An empty prompt and an oversized first frame are explained, not crashed on.
        page.locator("#vd-generate").click()
        expect_text(page, "#vd-status", "Write a prompt first")
        big = tmp_path / "big.png"
        noise = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
        Image.fromarray(noise).save(big)
        assert big.stat().st_size > MAX_IMAGE
        page.locator("#vd-first").get_by_text("First frame (optional)").click()
        page.locator("#vd-image input[type=file]").set_input_files(str(big))
        page.get_by_text("exceed the maximum allowed size").first.wait_for()

        # Generate: the choices come from the registry; the job goes through the worker.
        prompt = "a red circle moving right on a black background"
        page.locator("#vd-prompt textarea").fill(prompt)
        page.get_by_label("96x64 (wide)").check()
        page.locator("#vd-generate").click()
        expect_text(page, "#vd-status", "Queued")
        completed_cards(page, 1)

        # The player plays it: its clock advances on its own.
        page.wait_for_function(
            "() => { const v = document.querySelector('#vd-player video');"
            " return v && v.readyState >= 2 && !v.paused && v.currentTime > 0.2; }",
            timeout=30_000,
        )
        clock = "document.querySelector('#vd-player video').currentTime"
        first = page.evaluate(clock)
        page.wait_for_function(f"{clock} !== {first}", timeout=10_000)
        # The exact prompt and settings are shown with it.
        details = page.locator("#vd-details").inner_text()
        assert prompt in details and "96x64" in details and "Seed" in details
        assert page.locator("#vd-remix").is_enabled()

        # Remix it; both videos are in the library, newest first.
        remix_prompt = "a blue circle moving right on a black background"
        page.locator("#vd-new-prompt textarea").fill(remix_prompt)
        page.locator("#vd-remix").click()
        expect_text(page, "#vd-status", "Remix")
        completed_cards(page, 2)
        prompts = page.locator("#vd-library .vd-prompt").all_inner_texts()
        assert prompts[:2] == [remix_prompt, prompt]

        # The API sees the same two videos for the same key: no side door.
        import openai

        client = openai.OpenAI(base_url=deployment.procs[0].base_url, api_key=key, max_retries=0)
        listed = client.videos.list()
        assert [v.prompt for v in listed.data] == [remix_prompt, prompt]
        assert listed.data[0].remixed_from_video_id == listed.data[1].id

        readme_shot = os.environ.get("VIDORA_STUDIO_SCREENSHOT")
        if readme_shot:
            fill_library_for_the_readme(page)
        shot = tmp_path / "studio.png"
        dismiss_messages(page)  # the ones tested above
        page.mouse.move(0, 0)
        page.screenshot(path=str(shot), full_page=True)
        with capsys.disabled():
            print(f"[studio e2e] screenshot: {shot}")
        if readme_shot:
            save_for_readme(shot, Path(readme_shot))
        page.close()  # an open page holds a stream that would delay the server's shutdown
    finally:
        deployment.close()
        print(deployment.logs())  # shown by pytest when the test failed


def dismiss_messages(page: Page) -> None:
    """Close every toast. One may time out and leave, or slide while the one above it goes,
    under the click: a click that cannot land is retried against whatever toast is left."""
    toasts = page.locator(".toast-close")
    for _ in range(20):
        if toasts.count() == 0:
            break
        with contextlib.suppress(PlaywrightTimeout):  # it moved or left by itself: look again
            toasts.first.click(timeout=2_000)
    page.wait_for_function("!document.querySelector('.toast-item')")


def save_for_readme(shot: Path, target: Path) -> None:
    """A 256-colour copy: the page is flat UI, so this keeps it sharp at a fraction of the size."""
    with Image.open(shot) as image:
        image.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(target, optimize=True)


def fill_library_for_the_readme(page: Page) -> None:
    """More videos for the README's screenshot; the first video ends up in the player."""
    page.locator("#vd-first").get_by_text("First frame (optional)").click()
    for prompt in EXTRA_PROMPTS:
        page.locator("#vd-prompt textarea").fill(prompt)
        page.locator("#vd-generate").click()
        expect_text(page, "#vd-status", "Queued")
        completed_cards(page, 2 + EXTRA_PROMPTS.index(prompt) + 1)
    page.locator("#vd-library .vd-card").nth(2).click()
    page.wait_for_function(
        "() => { const v = document.querySelector('#vd-player video');"
        " return v && v.currentTime > 1.0; }"
    )
    page.evaluate("window.scrollTo(0, 0)")


def test_without_auth_the_studio_needs_no_sign_in(tmp_path: Path, browser: Browser) -> None:
    deployment = start(tmp_path, "--no-auth", engine="fake_engine:build")
    try:
        page = open_studio(browser, deployment)
        expect_text(page, "#vd-who", "no sign-in")
        assert page.locator("#vd-key").is_hidden()
        page.locator("#vd-prompt textarea").fill("a green square moving up")
        page.locator("#vd-generate").click()
        completed_cards(page, 1)
        expect_text(page, "#vd-details", "a green square moving up")
        page.close()  # an open page holds a stream that would delay the server's shutdown
    finally:
        deployment.close()
        print(deployment.logs())
