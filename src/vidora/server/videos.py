"""The video service: what each endpoint does, in terms of jobs, files and limits.

Routes call one method each and present what it returns; every refusal is an APIError.
A caller sees only its own videos: another key's id is indistinguishable from an unknown
one (404), so ids leak nothing.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from vidora.server.errors import Conflict, InvalidRequest, NotFound
from vidora.server.inputs import Upload, closest_size, decode_data_url, decode_image, fit_frames
from vidora.server.jobs import COMPLETED, EXPIRED, Job, JobQueue, NewJob, new_video_id
from vidora.server.keys import ApiKey
from vidora.server.limits import Limiter
from vidora.server.protocol import (
    MAX_SEED,
    CreateVideoRequest,
    EditRequest,
    ExtendRequest,
    GenerationParams,
    RemixRequest,
    VideoReference,
    check_seconds,
)
from vidora.server.registry import ModelSpec, Registry
from vidora.server.settings import Settings
from vidora.server.storage import VARIANTS, Storage
from vidora.world.spec import FPS

log = logging.getLogger("vidora.server")


@dataclass(frozen=True)
class SourceVideo:
    """What an edit or an extension starts from."""

    frames: np.ndarray
    """(T, H, W, 3) uint8 at 8 fps, at the upload's own size."""
    spec: ModelSpec
    model: str
    """The name the new video reports (the source's, alias kept)."""
    size: str
    seconds: float
    id: str | None
    """The source video's id, when it is one of ours."""


@dataclass(frozen=True)
class Content:
    """A file to send for a content download."""

    path: Path
    media_type: str


class VideoService:
    """Create, read, list, delete and derive videos for one caller at a time."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        queue: JobQueue,
        storage: Storage,
        limiter: Limiter,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.queue = queue
        self.storage = storage
        self.limiter = limiter
        self.wake = wake

    # --- reading --------------------------------------------------------------------------

    def retrieve(self, key: ApiKey | None, video_id: str) -> Job:
        job = self.queue.get(video_id, _owner(key))
        if job is None:
            raise NotFound(
                f"No video found with id '{video_id}'.", param="video_id", code="video_not_found"
            )
        if job.status == EXPIRED:
            when = datetime.fromtimestamp(job.expires_at or 0, UTC).strftime(
                "%Y-%m-%d %H:%M:%S UTC"
            )
            raise NotFound(
                f"Video '{video_id}' expired at {when}; its files were deleted.",
                param="video_id",
                code="video_expired",
            )
        return job

    def page(
        self, key: ApiKey | None, *, after: str | None, limit: int, order: str
    ) -> tuple[list[Job], bool]:
        result = self.queue.page(_owner(key), after=after, limit=limit, descending=order == "desc")
        if result is None:
            raise InvalidRequest(
                f"Invalid 'after': no video found with id '{after}'.",
                param="after",
                code="invalid_cursor",
            )
        return result

    def content(self, key: ApiKey | None, video_id: str, variant: str) -> Content:
        job = self.retrieve(key, video_id)
        if job.status != COMPLETED or job.output_dir is None:
            raise Conflict(
                f"Video '{video_id}' is {job.status}; "
                "its content can be downloaded once it is completed.",
                code="video_not_ready",
                headers={"x-should-retry": "false"},
            )
        path = self.storage.output_path(job.id, job.output_dir, variant)
        if not path.is_file():  # the janitor got there between the lookup and now
            raise NotFound(
                f"Video '{video_id}' expired; its files were deleted.", code="video_expired"
            )
        return Content(path=path, media_type=VARIANTS[variant][1])

    # --- writing --------------------------------------------------------------------------

    def delete(self, key: ApiKey | None, video_id: str) -> Job:
        job = self.queue.delete(video_id, _owner(key))
        if job is None:
            raise NotFound(
                f"No video found with id '{video_id}'.", param="video_id", code="video_not_found"
            )
        self.storage.delete_video(video_id)
        log.info("video deleted", extra={"video_id": video_id, "status": job.status})
        return job

    def create(self, key: ApiKey | None, request: CreateVideoRequest, upload: Upload | None) -> Job:
        params = request.to_params(self.registry)
        image = self._reference_image(request, upload)
        video_id = new_video_id()
        if image is not None:
            width, height = _dims(params.size)
            self.storage.save_first_frame(video_id, _fit(image, width, height))
        return self._queue(
            key,
            _new_job(video_id, key, "create", params, has_first_frame=image is not None),
        )

    def remix(self, key: ApiKey | None, video_id: str, request: RemixRequest) -> Job:
        """The source's model, size, seconds, seed and inputs, with a new prompt."""
        source = self._completed_source(key, video_id, "video_id")
        self._model_of(source, "video_id")
        new_id = new_video_id()
        self.storage.copy_inputs(source.id, new_id)
        job = NewJob(
            id=new_id,
            key_id=_owner(key),
            kind=source.kind,
            model=source.model,
            engine_model=source.engine_model,
            prompt=request.prompt,
            negative_prompt=source.negative_prompt,
            size=source.size,
            seconds=source.seconds,
            total_seconds=source.total_seconds,
            seed=source.seed,
            steps=source.steps,
            guidance=source.guidance,
            has_first_frame=source.has_first_frame,
            has_extend_from=source.has_extend_from,
            remixed_from_video_id=source.id,
            source_video_id=source.source_video_id,
        )
        return self._queue(key, job)

    def edit(self, key: ApiKey | None, request: EditRequest, upload: Upload | None) -> Job:
        """A new video that starts from the source's first frame and follows the new prompt."""
        source = self._source_video(key, request.video, upload)
        seconds = max(
            (s for s in source.spec.seconds if s <= source.seconds), default=source.spec.seconds[0]
        )
        params = self._params(source, seconds, request.prompt, request.seed)
        video_id = new_video_id()
        width, height = _dims(source.size)
        self.storage.save_first_frame(video_id, fit_frames(source.frames[:1], width, height)[0])
        job = _new_job(
            video_id, key, "edit", params, has_first_frame=True, source_video_id=source.id
        )
        return self._queue(key, job)

    def extend(self, key: ApiKey | None, request: ExtendRequest, upload: Upload | None) -> Job:
        """A continuation of `seconds`; the result is the source followed by the new frames."""
        source = self._source_video(key, request.video, upload)
        seconds = check_seconds(source.spec, request.seconds, "seconds")
        params = self._params(source, seconds, request.prompt, request.seed)
        width, height = _dims(source.size)
        frames = fit_frames(source.frames, width, height)
        video_id = new_video_id()
        self.storage.save_extend_from(video_id, frames)
        job = _new_job(
            video_id,
            key,
            "extend",
            params,
            has_extend_from=True,
            source_video_id=source.id,
            total_seconds=round((len(frames) + seconds * FPS) / FPS),
        )
        return self._queue(key, job)

    # --- helpers --------------------------------------------------------------------------

    def _queue(self, key: ApiKey | None, job: NewJob) -> Job:
        """Check the key's job limits and insert, in one transaction; drop inputs on refusal."""
        try:
            with self.queue.db.write() as conn:
                now = self.queue.clock()
                if key is not None:
                    self.limiter.check_new_job(conn, key, job.seconds, now)
                row = self.queue.insert(job, conn)
                if key is not None:
                    self.limiter.record_usage(conn, key, job.id, job.seconds, now)
        except BaseException:
            self.storage.delete_video(job.id)
            raise
        log.info(
            "video queued",
            extra={
                "video_id": row.id,
                "kind": row.kind,
                "model": row.engine_model,
                "size": row.size,
            },
        )
        self.wake()
        return row

    def _reference_image(
        self, request: CreateVideoRequest, upload: Upload | None
    ) -> np.ndarray | None:
        reference = request.input_reference
        if upload is not None and reference is not None:
            raise InvalidRequest(
                "Send 'input_reference' either as a file or as {\"image_url\": ...}, not both.",
                param="input_reference",
            )
        if upload is not None:
            return decode_image(upload.data, param="input_reference")
        if reference is None:
            return None
        if reference.file_id is not None:
            raise InvalidRequest(
                "Invalid 'input_reference.file_id': this server has no Files API; upload the image "
                "or send it as a data URL in 'image_url'.",
                param="input_reference.file_id",
                code="unsupported_parameter",
            )
        if reference.image_url is None:
            raise InvalidRequest(
                "Missing required parameter: 'input_reference.image_url'.",
                param="input_reference.image_url",
                code="missing_required_parameter",
            )
        data = decode_data_url(
            reference.image_url,
            param="input_reference.image_url",
            max_bytes=self.settings.max_image_bytes,
        )
        return decode_image(data, param="input_reference.image_url")

    def _completed_source(self, key: ApiKey | None, video_id: str, param: str) -> Job:
        job = self.queue.get(video_id, _owner(key))
        if job is None or job.status == EXPIRED:
            raise NotFound(
                f"No video found with id '{video_id}'.", param=param, code="video_not_found"
            )
        if job.status != COMPLETED or job.output_dir is None:
            raise Conflict(
                f"Video '{video_id}' is {job.status}; only a completed video can be used here.",
                param=param,
                code="video_not_ready",
                headers={"x-should-retry": "false"},
            )
        return job

    def _model_of(self, job: Job, param: str) -> ModelSpec:
        spec = self.registry.models.get(job.engine_model)
        if spec is None:
            raise InvalidRequest(
                f"Video '{job.id}' was made by {job.engine_model}, "
                "which this server no longer offers.",
                param=param,
            )
        return spec

    def _source_video(
        self, key: ApiKey | None, reference: VideoReference | None, upload: Upload | None
    ) -> SourceVideo:
        """The video an edit or extension starts from: one of ours by id, or an upload."""
        from vidora.media import MediaError, read_mp4

        max_frames = self.settings.max_source_seconds * FPS + 1
        if reference is not None and upload is not None:
            raise InvalidRequest(
                "Send 'video' either as a file or as {\"id\": ...}, not both.", param="video"
            )
        if reference is not None:
            job = self._completed_source(key, reference.id, "video.id")
            spec = self._model_of(job, "video.id")
            path = self.storage.output_path(job.id, job.output_dir or "", "video")
            frames, _ = read_mp4(path, fps=FPS, max_frames=max_frames)
            return SourceVideo(frames, spec, job.model, job.size, float(job.total_seconds), job.id)
        if upload is None:
            raise InvalidRequest(
                'Missing required parameter: \'video\' (a file, or {"id": "video_..."}).',
                param="video",
                code="missing_required_parameter",
            )
        try:
            frames, _ = read_mp4(upload.data, fps=FPS, max_frames=max_frames)
        except MediaError:
            raise InvalidRequest(
                "Invalid 'video': not a readable video file (mp4, webm, mov).",
                param="video",
                code="invalid_video",
            ) from None
        if frames.shape[0] > self.settings.max_source_seconds * FPS:
            raise InvalidRequest(
                f"Invalid 'video': longer than {self.settings.max_source_seconds} s, "
                "the most an extension continues.",
                param="video",
                code="video_too_long",
            )
        spec = self.registry.models[self.registry.default]
        size = closest_size(frames.shape[2], frames.shape[1], spec.sizes)
        return SourceVideo(frames, spec, spec.id, size, frames.shape[0] / FPS, None)

    @staticmethod
    def _params(
        source: SourceVideo, seconds: int, prompt: str, seed: int | None
    ) -> GenerationParams:
        return GenerationParams(
            model=source.model,
            spec=source.spec,
            prompt=prompt,
            negative_prompt=None,
            size=source.size,
            seconds=seconds,
            seed=seed if seed is not None else random.randint(0, MAX_SEED),
            steps=None,
            guidance=None,
        )


def _new_job(
    video_id: str,
    key: ApiKey | None,
    kind: str,
    params: GenerationParams,
    *,
    has_first_frame: bool = False,
    has_extend_from: bool = False,
    source_video_id: str | None = None,
    total_seconds: int | None = None,
) -> NewJob:
    return NewJob(
        id=video_id,
        key_id=_owner(key),
        kind=kind,
        model=params.model,
        engine_model=params.spec.id,
        prompt=params.prompt,
        negative_prompt=params.negative_prompt,
        size=params.size,
        seconds=params.seconds,
        total_seconds=total_seconds if total_seconds is not None else params.seconds,
        seed=params.seed,
        steps=params.steps,
        guidance=params.guidance,
        has_first_frame=has_first_frame,
        has_extend_from=has_extend_from,
        source_video_id=source_video_id,
    )


def _owner(key: ApiKey | None) -> str | None:
    return None if key is None else key.id


def _dims(size: str) -> tuple[int, int]:
    width, height = size.split("x")
    return int(width), int(height)


def _fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    from vidora.media import fit_image

    return fit_image(image, width, height)
