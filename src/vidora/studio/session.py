"""What the studio does for one person, in terms of the server's own services.

Every action goes through the same `VideoService`, `KeyStore` and `Limiter` as the API: the
key is checked again on every action (so a revoked key stops working at once), user actions
count against the key's requests per minute, and jobs go into the same queue under the same
limits. Nothing here imports gradio, so the tests call it directly.

Every refusal becomes a `StudioError` whose message is meant for a person: the API's
messages, with the API's parameter names replaced by the labels the page shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidora.server.errors import APIError
from vidora.server.inputs import Upload
from vidora.server.jobs import COMPLETED, FAILED, IN_PROGRESS, QUEUED, Job
from vidora.server.keys import ApiKey
from vidora.server.protocol import (
    CreateVideoRequest,
    ExtendRequest,
    RemixRequest,
    parse_request,
)
from vidora.server.registry import ModelSpec
from vidora.server.services import Services

LIBRARY_SIZE = 48
"""Newest videos shown in the library; older ones stay reachable through the API."""
EXTEND_SECONDS = 4
"""What "Extend" adds, when the model offers it (otherwise its shortest duration)."""

LABELS = {
    "prompt": "Prompt",
    "model": "Model",
    "size": "Size",
    "seconds": "Duration",
    "seed": "Seed",
    "steps": "Steps",
    "guidance": "Guidance",
    "negative_prompt": "Negative prompt",
    "input_reference": "First-frame image",
    "video_id": "Video",
    "video.id": "Video",
}
"""API parameter -> the label of the field on the page, for error messages."""


class StudioError(Exception):
    """A refusal to show the user as it is (no traceback, no API jargon)."""


@dataclass(frozen=True)
class Caller:
    """Who is using the page: a key's record, or nobody in particular when auth is off."""

    key: ApiKey | None

    @property
    def owner(self) -> str | None:
        return self.key.id if self.key is not None else None

    @property
    def name(self) -> str:
        return self.key.name if self.key is not None else "local user"


@dataclass(frozen=True)
class CreateForm:
    """The create panel's fields as the page gives them (empty numbers are None)."""

    prompt: str
    model: str | None = None
    size: str | None = None
    seconds: int | str | None = None
    seed: float | None = None
    steps: float | None = None
    guidance: float | None = None
    negative_prompt: str | None = None
    image_path: str | None = None


@dataclass(frozen=True)
class Library:
    """The newest videos of one caller, newest first."""

    videos: list[Job]
    has_more: bool

    @property
    def in_flight(self) -> int:
        return sum(job.status in (QUEUED, IN_PROGRESS) for job in self.videos)


class Studio:
    """The studio's actions over one process's services; one instance serves every user."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings
        self.registry = services.registry
        self.videos = services.videos

    # --- who -------------------------------------------------------------------------------

    @property
    def auth(self) -> bool:
        return self.settings.auth

    def sign_in(self, key_text: str | None) -> Caller:
        """Check a key typed into the page; counts as a request, like any API call."""
        if self.auth and not (key_text or "").strip():
            raise StudioError(
                "Paste your API key (sk-vidora-...) to sign in; "
                "create one with `vidora keys create NAME`."
            )
        return self.caller(key_text, count=True)

    def caller(self, key_text: str | None, *, count: bool = True) -> Caller:
        """The caller for the key the session holds, checked now (revocation holds at once).

        `count` charges the request to the key's per-minute budget: user actions do, the
        page's background refresh does not (an open tab must not eat the budget).
        """
        if not self.auth:
            return Caller(None)
        if not key_text:
            raise StudioError("Sign in with your API key first.")
        try:
            key = self.services.keys.authenticate(f"Bearer {key_text.strip()}")
            if count:
                self.services.limiter.check_request(key)
        except APIError as error:
            raise _readable(error) from None
        return Caller(key)

    # --- choices from the registry ---------------------------------------------------------

    def models(self) -> list[str]:
        """Model ids the page offers (aliases such as sora-2 are for API clients)."""
        return list(self.registry.models)

    def model(self, name: str | None) -> ModelSpec:
        spec = self.registry.resolve(name)
        if spec is None:
            raise StudioError(f"Model {name!r} is not offered here; pick one from the list.")
        return spec

    def extend_seconds(self, spec: ModelSpec) -> int:
        return EXTEND_SECONDS if EXTEND_SECONDS in spec.seconds else min(spec.seconds)

    # --- reading ---------------------------------------------------------------------------

    def library(self, caller: Caller) -> Library:
        jobs, has_more = self._call(
            self.videos.page, caller.key, after=None, limit=LIBRARY_SIZE, order="desc"
        )
        return Library(jobs, has_more)

    def video(self, caller: Caller, video_id: str) -> Job:
        return self._call(self.videos.retrieve, caller.key, video_id)

    def file(self, caller: Caller, video_id: str, variant: str) -> Path:
        """A completed video's mp4, thumbnail or spritesheet, checked like a download."""
        return self._call(self.videos.content, caller.key, video_id, variant).path

    def thumbnail_path(self, job: Job) -> Path | None:
        """The thumbnail of a job already read for its owner (no second lookup)."""
        if job.status != COMPLETED or job.output_dir is None:
            return None
        path = self.services.storage.output_path(job.id, job.output_dir, "thumbnail")
        return path if path.is_file() else None

    # --- writing ---------------------------------------------------------------------------

    def create(self, caller: Caller, form: CreateForm) -> Job:
        if not (form.prompt or "").strip():
            raise StudioError("Write a prompt first: describe the video you want to see.")
        self._check_in_flight(caller)
        fields: dict[str, Any] = {"prompt": form.prompt, "model": form.model or None}
        fields["size"] = form.size or None
        fields["seconds"] = str(form.seconds) if form.seconds not in (None, "") else None
        for name in ("seed", "steps"):
            fields[name] = _whole(getattr(form, name), LABELS[name])
        fields["guidance"] = form.guidance
        fields["negative_prompt"] = (form.negative_prompt or "").strip() or None
        upload = self._image(form.image_path)
        request = self._call(
            parse_request, CreateVideoRequest, {k: v for k, v in fields.items() if v is not None}
        )
        return self._call(self.videos.create, caller.key, request, upload)

    def remix(self, caller: Caller, video_id: str, prompt: str) -> Job:
        """The same seed and settings with a new prompt."""
        if not (prompt or "").strip():
            raise StudioError("Write the new prompt for the remix first.")
        self._check_in_flight(caller)
        request = self._call(parse_request, RemixRequest, {"prompt": prompt})
        return self._call(self.videos.remix, caller.key, video_id, request)

    def extend(self, caller: Caller, video_id: str, prompt: str) -> Job:
        """The video followed by a few more seconds that follow `prompt`."""
        if not (prompt or "").strip():
            raise StudioError("Write what should happen next (the prompt box) first.")
        source = self.video(caller, video_id)
        seconds = self.extend_seconds(self.model(source.engine_model))
        self._check_in_flight(caller)
        request = self._call(
            parse_request,
            ExtendRequest,
            {"prompt": prompt, "seconds": seconds, "video": {"id": video_id}},
        )
        return self._call(self.videos.extend, caller.key, request, None)

    def delete(self, caller: Caller, video_id: str) -> Job:
        return self._call(self.videos.delete, caller.key, video_id)

    # --- helpers ---------------------------------------------------------------------------

    def _check_in_flight(self, caller: Caller) -> None:
        """The studio's own cap per person; the key's limits are checked by the service."""
        cap = self.settings.studio_in_flight_limit
        if not cap:
            return
        running = self.services.queue.count_in_flight(caller.owner)
        if running >= cap:
            raise StudioError(
                f"You already have {running} videos queued or generating (the studio allows "
                f"{cap} at a time); wait for one to finish."
            )

    def _image(self, path: str | None) -> Upload | None:
        if not path:
            return None
        file = Path(path)
        limit = self.settings.max_image_bytes
        try:
            size = file.stat().st_size
            if size > limit:
                raise StudioError(
                    f"The first-frame image is {_megabytes(size)}; the limit is "
                    f"{_megabytes(limit)}. Use a smaller image."
                )
            data = file.read_bytes()
        except OSError:
            raise StudioError("The first-frame image could not be read; upload it again.") from None
        return Upload("input_reference", file.name, None, data)

    @staticmethod
    def _call(function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except APIError as error:
            raise _readable(error) from None


def _readable(error: APIError) -> StudioError:
    """The API's message with its parameter name replaced by the page's label."""
    message = error.message
    if error.param:
        label = LABELS.get(error.param, error.param)
        message = message.replace(f"Invalid '{error.param}': ", f"{label}: ")
        message = message.replace(f"'{error.param}'", label)
    return StudioError(message)


def _whole(value: float | None, label: str) -> int | None:
    """gr.Number gives floats; seeds and steps must be whole numbers."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if float(value) != int(value):
        raise StudioError(f"{label} must be a whole number, not {value}.")
    return int(value)


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{size / 1024:.0f} KB"


def is_finished(job: Job) -> bool:
    return job.status in (COMPLETED, FAILED)
