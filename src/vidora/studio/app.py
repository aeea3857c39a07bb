"""The studio page: a Gradio Blocks app that `vidora serve` mounts at /studio.

The page only asks and shows: every action is a `Studio` call (session.py) over the
server's own services, and generation happens in the worker. While videos are queued or
generating, a timer re-reads the library every second or so and re-renders only what
changed, so the page stays responsive however long the model takes.

Handlers return dicts of the components they change; the rest keep their state. Every
handler runs inside `_guarded`, which turns a refusal into a readable message (a toast and
a line under the form) and an unexpected failure into a short note plus a server log entry,
never a traceback in the page.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import FastAPI

from vidora.server.jobs import COMPLETED, FAILED, Job
from vidora.server.services import Services
from vidora.studio.session import Caller, CreateForm, Library, Studio, StudioError
from vidora.studio.views import (
    STUDIO_CSS,
    details_html,
    library_html,
    size_label,
    thumbnail_url,
)

log = logging.getLogger("vidora.studio")

STUDIO_PATH = "/studio"

PICK_JS = """
element.addEventListener('click', (event) => {
  const card = event.target.closest('[data-video-id]');
  if (card) trigger('select', {video_id: card.dataset.videoId});
});
"""
"""Clicking a library card selects its video (one listener on the grid, cards come and go)."""

TOAST_SECONDS = 6
"""How long a message pops up; it also stays written under the form until the next action."""

DOWNLOADS = {
    "video": ".mp4",
    "thumbnail": "-thumbnail.webp",
    "spritesheet": "-spritesheet.jpg",
}
"""Variant -> file name suffix, so downloads are named after the video, not `video.mp4`."""


class Exports:
    """Named links to a completed video's files, in a folder gradio may serve from.

    Gradio copies what it serves into its own cache; links named `<video_id>.mp4` give the
    downloads useful names without copying the data dir's files.
    """

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="vidora-studio-"))
        weakref.finalize(self, shutil.rmtree, self.root, True)

    def files(self, studio: Studio, caller: Caller, job: Job) -> dict[str, str]:
        folder = self.root / job.id / (job.output_dir or "current")
        folder.mkdir(parents=True, exist_ok=True)
        paths: dict[str, str] = {}
        for variant, suffix in DOWNLOADS.items():
            target = folder / f"{job.id}{suffix}"
            if not target.exists():
                source = studio.file(caller, job.id, variant)  # owner and status checked
                try:
                    os.link(source, target)
                except FileExistsError:
                    pass
                except OSError:
                    shutil.copyfile(source, target)
            paths[variant] = str(target)
        return paths

    def forget(self, video_id: str) -> None:
        shutil.rmtree(self.root / video_id, ignore_errors=True)


def _library_signature(library: Library, selected: str | None) -> str:
    """Changes whenever the library would render differently."""
    parts = [f"{j.id}:{j.status}:{j.progress}:{j.output_dir}" for j in library.videos]
    return f"{selected}|{library.has_more}|" + ",".join(parts)


def _newly_failed(old_signature: str, library: Library) -> list[Job]:
    """Videos that were queued or generating at the last refresh and have failed since."""
    waiting = {
        part.split(":")[0]
        for part in old_signature.partition("|")[2].partition("|")[2].split(",")
        if part.split(":")[1:2] in (["queued"], ["in_progress"])
    }
    return [job for job in library.videos if job.id in waiting and job.status == FAILED]


def _player_signature(job: Job | None) -> str:
    return "" if job is None else f"{job.id}|{job.status}|{job.progress}|{job.output_dir}"


def build_studio(services: Services) -> gr.Blocks:
    """The studio's page over one process's services (every browser session shares it)."""
    studio = Studio(services)
    exports = Exports()
    settings = services.settings
    default = studio.model(None)
    interval = min(2.0, max(0.5, settings.poll_after_ms / 1000))

    with gr.Blocks(
        title="Vidora studio", analytics_enabled=False, delete_cache=(3600, 24 * 3600)
    ) as demo:
        demo._vidora_exports = exports  # type: ignore[attr-defined]  # lives as long as the page
        key_state = gr.State(None)
        """The key the session signed in with; kept server side, checked on every action."""
        selected = gr.State(None)
        lib_sig = gr.State("")
        shown_sig = gr.State("")

        with gr.Row(equal_height=True):
            gr.Markdown("# Vidora studio", elem_id="vd-title")
            who = gr.Markdown(
                "" if settings.auth else "Local mode: no sign-in (the server runs with --no-auth)",
                elem_id="vd-who",
            )
            sign_out_btn = gr.Button("Sign out", size="sm", visible=False, scale=0)

        with gr.Column(visible=settings.auth) as sign_in_box:
            gr.Markdown(
                "Sign in with an API key of this server; create one with `vidora keys create NAME`."
            )
            key_box = gr.Textbox(
                label="API key", type="password", placeholder="sk-vidora-...", elem_id="vd-key"
            )
            sign_in_btn = gr.Button("Sign in", variant="primary", elem_id="vd-sign-in")
            sign_in_msg = gr.Markdown(elem_id="vd-sign-in-msg")

        with gr.Column(visible=not settings.auth) as main:
            with gr.Row():
                with gr.Column(scale=5, min_width=320):
                    prompt = gr.Textbox(
                        label="Prompt",
                        lines=2,
                        placeholder="a red circle moving right on a black background",
                        elem_id="vd-prompt",
                    )
                    with gr.Row():
                        model = gr.Dropdown(
                            choices=studio.models(),
                            value=default.id,
                            label="Model",
                            interactive=True,
                            elem_id="vd-model",
                        )
                        seconds = gr.Radio(
                            choices=[(f"{s} s", s) for s in default.seconds],
                            value=default.seconds[0],
                            label="Duration",
                            elem_id="vd-seconds",
                        )
                    size = gr.Radio(
                        choices=[(size_label(s), s) for s in default.sizes],
                        value=default.sizes[0],
                        label="Size",
                        elem_id="vd-size",
                    )
                    with gr.Accordion("Advanced settings", open=False):
                        with gr.Row():
                            seed = gr.Number(
                                label="Seed (empty: random)", precision=0, elem_id="vd-seed"
                            )
                            steps = gr.Number(
                                label="Steps (empty: model default)", precision=0, minimum=1
                            )
                            guidance = gr.Number(label="Guidance (empty: model default)", minimum=0)
                        negative = gr.Textbox(
                            label="Negative prompt", placeholder="what the video should not show"
                        )
                    with gr.Accordion("First frame (optional)", open=False, elem_id="vd-first"):
                        image = gr.Image(
                            label="The video starts from this image (fitted to the size)",
                            type="filepath",
                            sources=["upload", "clipboard"],
                            height=140,
                            elem_id="vd-image",
                        )
                    generate_btn = gr.Button("Generate", variant="primary", elem_id="vd-generate")
                    status = gr.Markdown(elem_id="vd-status")
                with gr.Column(scale=7):
                    with gr.Row():
                        player = gr.Video(
                            label="Player",
                            autoplay=True,
                            loop=True,
                            interactive=False,
                            height=260,
                            min_width=240,
                            elem_id="vd-player",
                        )
                        details = gr.HTML(
                            details_html(None), js_on_load=None, elem_id="vd-details", min_width=240
                        )
                    with gr.Row():
                        dl_video = gr.DownloadButton("mp4", interactive=False, size="sm")
                        dl_thumb = gr.DownloadButton("Thumbnail", interactive=False, size="sm")
                        dl_sprite = gr.DownloadButton("Spritesheet", interactive=False, size="sm")
                    new_prompt = gr.Textbox(
                        label="New prompt (remix) or what happens next (extend)",
                        lines=2,
                        elem_id="vd-new-prompt",
                    )
                    with gr.Row():
                        remix_btn = gr.Button("Remix", interactive=False, elem_id="vd-remix")
                        extend_btn = gr.Button(
                            f"Extend +{studio.extend_seconds(default)} s",
                            interactive=False,
                            elem_id="vd-extend",
                        )
                        delete_btn = gr.Button(
                            "Delete", variant="stop", interactive=False, elem_id="vd-delete"
                        )
                    with gr.Row(visible=False) as confirm_row:
                        confirm_btn = gr.Button(
                            "Delete it for good", variant="stop", elem_id="vd-confirm-delete"
                        )
                        cancel_btn = gr.Button("Keep it")
            with gr.Row():
                gr.Markdown("## Library")
                library_info = gr.Markdown(elem_id="vd-library-info")
            library = gr.HTML(
                library_html([], None), js_on_load=PICK_JS, elem_id="vd-library", padding=False
            )
        timer = gr.Timer(interval, active=not settings.auth)
        downloads = ((dl_video, "video"), (dl_thumb, "thumbnail"), (dl_sprite, "spritesheet"))

        # --- views ---------------------------------------------------------------------------

        def player_view(caller: Caller, job: Job | None, shown: str) -> dict[Any, Any]:
            """Updates for the player side; only what changed since `shown`."""
            signature = _player_signature(job)
            if signature == shown:
                return {}
            out: dict[Any, Any] = {details: details_html(job), shown_sig: signature}
            old_id, _, rest = shown.partition("|")
            old_status = rest.partition("|")[0]
            if job is not None and job.id == old_id and job.status == old_status:
                return out  # only the progress moved
            done = job is not None and job.status == COMPLETED
            files = exports.files(studio, caller, job) if done and job else {}
            out[player] = files.get("video")
            for button, variant in downloads:
                out[button] = gr.DownloadButton(value=files.get(variant), interactive=done)
            out[remix_btn] = gr.Button(interactive=done)
            extend_label = "Extend"
            if job is not None:
                spec = services.registry.models.get(job.engine_model)
                if spec is not None:
                    extend_label = f"Extend +{studio.extend_seconds(spec)} s"
            out[extend_btn] = gr.Button(value=extend_label, interactive=done)
            out[delete_btn] = gr.Button(interactive=job is not None)
            if job is not None and job.id != old_id:
                out[new_prompt] = job.prompt  # a starting point for remix and extend
            if job is None or job.id != old_id:
                out[confirm_row] = gr.Row(visible=False)
            return out

        def view(
            caller: Caller, chosen: str | None, old_lib: str, old_shown: str
        ) -> dict[Any, Any]:
            """Library and player for the caller, re-rendering only what changed."""
            found = studio.library(caller)
            job = next((j for j in found.videos if j.id == chosen), None)
            if chosen is not None and job is None:
                try:
                    job = studio.video(caller, chosen)
                except StudioError:  # deleted or expired meanwhile
                    chosen = None
            out: dict[Any, Any] = {selected: chosen}
            signature = _library_signature(found, chosen)
            for job_failed in _newly_failed(old_lib, found):
                gr.Warning(
                    f"A video failed: {job_failed.error_message or job_failed.error_code}",
                    title="Generation failed",
                    duration=TOAST_SECONDS,
                )
            if signature != old_lib:
                cards = [(j, thumbnail_url(studio.thumbnail_path(j))) for j in found.videos]
                out[library] = library_html(cards, chosen, has_more=found.has_more)
                out[lib_sig] = signature
                busy = found.in_flight
                info = f"{len(found.videos)} video{'s' * (len(found.videos) != 1)}"
                if busy:
                    info += f" · {busy} queued or generating"
                out[library_info] = info
            out.update(player_view(caller, job, old_shown))
            return out

        def redraw(
            caller: Caller, chosen: str | None, old_lib: str, old_shown: str
        ) -> dict[Any, Any]:
            """`view` for the page's own redraws (the timer's tick, the page's load): all but
            the selection. Such a redraw can start before a click (generate, pick, remix)
            finishes, and so carry the old selection; writing it back would undo the click's,
            and every later tick would show the old video (seen in CI for a tick, and for a
            load that ended after a generate on a page without sign-in). The selection is the
            clicks' alone: these redraws' outputs leave it out, and so must what they return."""
            out = view(caller, chosen, old_lib, old_shown)
            del out[selected]
            return out

        # --- handlers ------------------------------------------------------------------------

        @_guarded(status)
        def on_generate(
            key: str | None,
            text: str,
            model_name: str,
            size_value: str,
            seconds_value: int,
            seed_value: float | None,
            steps_value: float | None,
            guidance_value: float | None,
            negative_value: str,
            image_path: str | None,
            old_lib: str,
            old_shown: str,
        ) -> dict[Any, Any]:
            caller = studio.caller(key)
            form = CreateForm(
                prompt=text,
                model=model_name,
                size=size_value,
                seconds=seconds_value,
                seed=seed_value,
                steps=steps_value,
                guidance=guidance_value,
                negative_prompt=negative_value,
                image_path=image_path,
            )
            job = studio.create(caller, form)
            return {
                status: f"Queued `{job.id}` (seed {job.seed}); it appears in the library below.",
                **view(caller, job.id, old_lib, old_shown),
            }

        @_guarded(status)
        def on_pick(
            key: str | None, old_lib: str, old_shown: str, event: gr.EventData
        ) -> dict[Any, Any]:
            caller = studio.caller(key)
            video_id = str(event._data.get("video_id", "")) if event._data else ""
            return {status: "", **view(caller, video_id or None, old_lib, old_shown)}

        @_guarded(status)
        def on_remix(
            key: str | None, chosen: str | None, text: str, old_lib: str, old_shown: str
        ) -> dict[Any, Any]:
            caller = studio.caller(key)
            job = studio.remix(caller, _picked(chosen), text)
            return {
                status: f"Remix `{job.id}` queued: same seed and settings, new prompt.",
                **view(caller, job.id, old_lib, old_shown),
            }

        @_guarded(status)
        def on_extend(
            key: str | None, chosen: str | None, text: str, old_lib: str, old_shown: str
        ) -> dict[Any, Any]:
            caller = studio.caller(key)
            job = studio.extend(caller, _picked(chosen), text)
            return {
                status: f"Extension `{job.id}` queued: {job.seconds} s more, "
                f"{job.total_seconds} s in all.",
                **view(caller, job.id, old_lib, old_shown),
            }

        @_guarded(status)
        def on_delete(
            key: str | None, chosen: str | None, old_lib: str, old_shown: str
        ) -> dict[Any, Any]:
            caller = studio.caller(key)
            video_id = _picked(chosen)
            studio.delete(caller, video_id)
            exports.forget(video_id)
            return {
                status: f"Deleted `{video_id}` and its files.",
                confirm_row: gr.Row(visible=False),
                **view(caller, None, old_lib, old_shown),
            }

        @_guarded(status)
        def on_tick(
            key: str | None, chosen: str | None, old_lib: str, old_shown: str
        ) -> dict[Any, Any]:
            if settings.auth and not key:
                return {timer: gr.Timer(active=False)}
            try:
                caller = studio.caller(key, count=False)
            except StudioError as error:  # revoked while the page was open
                gr.Warning(str(error), duration=TOAST_SECONDS)
                return {status: f"**Signed out:** {error}", timer: gr.Timer(active=False)}
            return redraw(caller, chosen, old_lib, old_shown)

        @_guarded(sign_in_msg)
        def on_sign_in(key: str | None) -> dict[Any, Any]:
            caller = studio.sign_in(key)
            return {
                key_state: (key or "").strip(),
                key_box: "",
                sign_in_msg: "",
                sign_in_box: gr.Column(visible=False),
                main: gr.Column(visible=True),
                who: f"Signed in as **{caller.name}**",
                sign_out_btn: gr.Button(visible=True),
                timer: gr.Timer(active=True),
                status: "",
                **view(caller, None, "", ""),
            }

        def on_sign_out() -> dict[Any, Any]:
            return {
                key_state: None,
                selected: None,
                lib_sig: "",
                shown_sig: "",
                sign_in_box: gr.Column(visible=True),
                main: gr.Column(visible=False),
                who: "",
                sign_out_btn: gr.Button(visible=False),
                timer: gr.Timer(active=False),
                library: library_html([], None),
                details: details_html(None),
                player: None,
            }

        @_guarded(status)
        def on_load(old_lib: str, old_shown: str) -> dict[Any, Any]:
            if settings.auth:
                return {}
            return redraw(studio.caller(None), None, old_lib, old_shown)

        @_guarded(status)
        def on_model(name: str) -> dict[Any, Any]:
            spec = studio.model(name)
            sizes = [(size_label(s), s) for s in spec.sizes]
            durations = [(f"{s} s", s) for s in spec.seconds]
            return {
                size: gr.Radio(choices=sizes, value=spec.sizes[0]),
                seconds: gr.Radio(choices=durations, value=spec.seconds[0]),
            }

        # --- wiring --------------------------------------------------------------------------

        player_parts = [
            player,
            details,
            dl_video,
            dl_thumb,
            dl_sprite,
            new_prompt,
            remix_btn,
            extend_btn,
            delete_btn,
            confirm_row,
            shown_sig,
        ]
        refreshed = [library, library_info, lib_sig, *player_parts]  # what a timer tick redraws
        view_parts = [status, selected, *refreshed]
        private: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}
        states = [lib_sig, shown_sig]

        form = [key_state, prompt, model, size, seconds, seed, steps, guidance, negative, image]
        generate_btn.click(on_generate, [*form, *states], view_parts, **private)
        library.select(on_pick, [key_state, *states], view_parts, **private)
        derive = [key_state, selected, new_prompt, *states]
        remix_btn.click(on_remix, derive, view_parts, **private)
        extend_btn.click(on_extend, derive, view_parts, **private)
        delete_btn.click(lambda: gr.Row(visible=True), None, confirm_row, **private)
        cancel_btn.click(lambda: gr.Row(visible=False), None, confirm_row, **private)
        confirm_btn.click(on_delete, [key_state, selected, *states], view_parts, **private)
        timer.tick(on_tick, [key_state, selected, *states], [status, *refreshed, timer], **private)
        sign_in_parts = [key_state, key_box, sign_in_msg, sign_in_box, main, who, sign_out_btn]
        sign_in_parts.append(timer)
        sign_in_btn.click(on_sign_in, key_box, [*sign_in_parts, *view_parts], **private)
        key_box.submit(on_sign_in, key_box, [*sign_in_parts, *view_parts], **private)
        sign_out_btn.click(on_sign_out, None, [*sign_in_parts, *view_parts], **private)
        model.change(on_model, model, [size, seconds, status], **private)
        demo.load(on_load, states, [status, *refreshed], **private)

    demo.queue(default_concurrency_limit=8, api_open=False)
    return demo


def _picked(chosen: str | None) -> str:
    """The library's selected video id, or the message that remix, extend and delete need one."""
    if chosen is None:
        raise StudioError("Pick a video in the library first.")
    return chosen


def _guarded(message_box: gr.Markdown) -> Callable[[Callable[..., dict]], Callable[..., dict]]:
    """Run a handler; show refusals as messages and log anything unexpected."""

    def decorate(handler: Callable[..., dict]) -> Callable[..., dict]:
        @functools.wraps(handler)
        def run(*args: Any, **kwargs: Any) -> dict:
            try:
                return handler(*args, **kwargs) or {message_box: gr.skip()}
            except StudioError as error:
                gr.Warning(str(error), duration=TOAST_SECONDS)
                return {message_box: f"**Not done:** {error}"}
            except Exception:
                log.exception("studio action failed", extra={"action": handler.__name__})
                message = "Something went wrong on the server; the details are in its log."
                gr.Warning(message, duration=TOAST_SECONDS)
                return {message_box: f"**Not done:** {message}"}

        return run

    return decorate


THEME = gr.themes.Soft(primary_hue="indigo", secondary_hue="slate")


def mount_studio(app: FastAPI, services: Services, path: str = STUDIO_PATH) -> None:
    """Serve the studio from `app` (same process and port as the API)."""
    gr.mount_gradio_app(
        app,
        build_studio(services),
        path=path,
        footer_links=[],
        run_history=False,  # it would keep what was typed (keys included) in the browser
        show_error=False,
        max_file_size=services.settings.max_image_bytes,
        ssr_mode=False,
        mcp_server=False,
        theme=THEME,
        css=STUDIO_CSS,
    )
