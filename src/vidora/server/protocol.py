"""The wire format: pydantic models for every request and response of the Videos API.

Field names, types and statuses are OpenAI's (see shared/specs/videos-api.md). Request
models convert themselves into job parameters (`to_params`), raising InvalidRequest with
the offending `param`, so services receive values that are already checked. Fields the
hosted API does not have are marked *extension*.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema, field_validator

from vidora.server.errors import InvalidRequest
from vidora.server.jobs import EXPIRED, Job
from vidora.server.registry import ModelSpec, Registry

MAX_PROMPT = 32000
MAX_SEED = 2**31 - 1
RequestT = TypeVar("RequestT", bound=BaseModel)


class _Request(BaseModel):
    """Unknown parameters are refused by name, as the hosted API does (it catches typos)."""

    model_config = ConfigDict(extra="forbid")


def _check_prompt(value: str) -> str:
    if not value.strip():
        raise ValueError("must contain some text")
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Seconds = Annotated[
    int | None,
    WithJsonSchema({"anyOf": [{"type": "string", "enum": ["4", "8", "12"]}, {"type": "integer"}]}),
]
"""OpenAI's "4" | "8" | "12" strings, or integers; each model lists the durations it makes."""


def _seconds(value: Any) -> int | None:
    """OpenAI sends "4"; the integer forms are accepted too."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError('must be a number of seconds such as "4"')
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise ValueError('must be a number of seconds such as "4"')


class ImageReference(BaseModel):
    """`input_reference` as JSON: an image given by data URL."""

    model_config = ConfigDict(extra="forbid")
    image_url: str | None = None
    """A `data:image/...;base64,` URL (remote URLs are not fetched)."""
    file_id: str | None = None
    """Accepted for shape compatibility; this server has no Files API."""


class VideoReference(BaseModel):
    """A video named by id, as edits and extensions accept it."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=128)


@dataclass(frozen=True)
class GenerationParams:
    """A create request resolved against the registry: every value checked and filled in."""

    model: str
    spec: ModelSpec
    prompt: str
    negative_prompt: str | None
    size: str
    seconds: int
    seed: int
    steps: int | None
    guidance: float | None


class CreateVideoRequest(_Request):
    """`POST /v1/videos` (JSON, or the same fields as multipart form)."""

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT)
    model: str | None = Field(default=None, max_length=256)
    seconds: Seconds = None
    size: str | None = Field(default=None, max_length=32)
    input_reference: ImageReference | None = None
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    """*extension*: the same seed and settings give the same video."""
    negative_prompt: str | None = Field(default=None, max_length=MAX_PROMPT)
    """*extension*: what the video should not show (classifier-free guidance)."""
    _negative = field_validator("negative_prompt")(lambda v: v if v is None else _check_prompt(v))
    steps: int | None = Field(default=None, ge=1, le=500)
    """*extension*: sampler steps; more is slower and usually cleaner."""
    guidance: float | None = Field(default=None, ge=0.0, le=50.0)
    """*extension*: guidance scale; higher follows the prompt more closely."""

    _prompt = field_validator("prompt")(_check_prompt)
    _secs = field_validator("seconds", mode="before")(_seconds)

    def to_params(self, registry: Registry) -> GenerationParams:
        """Resolve model, size and seconds against what the model offers."""
        spec = resolve_model(registry, self.model)
        return GenerationParams(
            model=self.model or spec.id,
            spec=spec,
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            size=check_size(spec, self.size),
            seconds=check_seconds(spec, self.seconds, "seconds"),
            seed=self.seed if self.seed is not None else random.randint(0, MAX_SEED),
            steps=self.steps,
            guidance=self.guidance,
        )


class RemixRequest(_Request):
    """`POST /v1/videos/{id}/remix`."""

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT)
    _prompt = field_validator("prompt")(_check_prompt)


class EditRequest(_Request):
    """`POST /v1/videos/edits`: `video` is `{"id": ...}` here or a file in multipart."""

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT)
    video: VideoReference | None = None
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    """*extension*, as for create."""
    _prompt = field_validator("prompt")(_check_prompt)


class ExtendRequest(_Request):
    """`POST /v1/videos/extensions`: `seconds` is the length of the new part."""

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT)
    seconds: Seconds
    video: VideoReference | None = None
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    """*extension*, as for create."""
    _prompt = field_validator("prompt")(_check_prompt)
    _secs = field_validator("seconds", mode="before")(_seconds)


# --- responses -----------------------------------------------------------------------------


class VideoError(BaseModel):
    code: str
    message: str


class VideoObject(BaseModel):
    """The Video object."""

    id: str
    object: Literal["video"] = "video"
    model: str
    status: Literal["queued", "in_progress", "completed", "failed"]
    progress: int
    created_at: int
    completed_at: int | None
    expires_at: int | None
    prompt: str | None
    size: str
    seconds: str
    remixed_from_video_id: str | None
    error: VideoError | None
    seed: int
    """*extension*: send it back with the same prompt and settings for the same video."""

    @classmethod
    def from_job(cls, job: Job) -> VideoObject:
        if job.status == EXPIRED:  # never shown: the service answers 404 first
            raise ValueError("an expired video has no public form")
        return cls(
            id=job.id,
            model=job.model,
            status=job.status,  # type: ignore[arg-type]
            progress=job.progress,
            created_at=int(job.created_at),
            completed_at=_int(job.completed_at),
            expires_at=_int(job.expires_at),
            prompt=job.prompt,
            size=job.size,
            seconds=str(job.total_seconds),
            remixed_from_video_id=job.remixed_from_video_id,
            error=VideoError(code=job.error_code, message=job.error_message or "")
            if job.error_code
            else None,
            seed=job.seed,
        )


class VideoList(BaseModel):
    object: Literal["list"] = "list"
    data: list[VideoObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class VideoDeleted(BaseModel):
    id: str
    object: Literal["video.deleted"] = "video.deleted"
    deleted: bool = True


class ModelObject(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    sizes: list[str]
    """*extension*: the sizes this model generates."""
    seconds: list[str]
    """*extension*: the durations this model generates."""
    alias_of: str | None = None
    """*extension*: for an alias such as `sora-2`, the model that serves it."""


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    error: ErrorDetail


# --- checks shared by the requests ---------------------------------------------------------


def resolve_model(registry: Registry, name: str | None) -> ModelSpec:
    spec = registry.resolve(name)
    if spec is None:
        raise InvalidRequest(
            f"Invalid 'model': {name!r} is not a model this server offers; "
            f"use one of: {', '.join(registry.names())}.",
            param="model",
            code="model_not_found",
        )
    return spec


def check_size(spec: ModelSpec, size: str | None) -> str:
    if size is None:
        return spec.sizes[0]
    if size not in spec.sizes:
        raise InvalidRequest(
            f"Invalid 'size': {size!r} is not supported by {spec.id}; "
            f"use one of: {', '.join(spec.sizes)}.",
            param="size",
            code="invalid_size",
        )
    return size


def check_seconds(spec: ModelSpec, seconds: int | None, param: str) -> int:
    if seconds is None:
        return spec.seconds[0]
    if seconds not in spec.seconds:
        allowed = ", ".join(f'"{s}"' for s in spec.seconds)
        raise InvalidRequest(
            f"Invalid '{param}': {seconds} seconds is not supported by {spec.id}; "
            f"use one of: {allowed}.",
            param=param,
            code="invalid_seconds",
        )
    return seconds


def parse_request(model: type[RequestT], data: dict[str, Any]) -> RequestT:
    """Validate a body, turning pydantic's first complaint into OpenAI's error wording."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        loc = ".".join(str(part) for part in first["loc"])
        kind = first["type"]
        if kind == "missing":
            raise InvalidRequest(
                f"Missing required parameter: '{loc}'.",
                param=loc,
                code="missing_required_parameter",
            ) from None
        if kind == "extra_forbidden":
            raise InvalidRequest(
                f"Unknown parameter: '{loc}'.", param=loc, code="unknown_parameter"
            ) from None
        message = first["msg"].removeprefix("Value error, ")
        raise InvalidRequest(
            f"Invalid '{loc}': {message}.", param=loc, code="invalid_value"
        ) from None


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)
