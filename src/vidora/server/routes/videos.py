"""`/v1/videos`: one thin function per endpoint; the work is in VideoService."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import FileResponse

from vidora.server.deps import CurrentKey, SettingsDep, Videos
from vidora.server.errors import InvalidRequest, NotFound
from vidora.server.inputs import Upload, read_body
from vidora.server.jobs import Job
from vidora.server.protocol import (
    CreateVideoRequest,
    EditRequest,
    ErrorResponse,
    ExtendRequest,
    RemixRequest,
    VideoDeleted,
    VideoList,
    VideoObject,
    parse_request,
)
from vidora.server.settings import Settings

VIDEO_ID = re.compile(r"^video_[0-9a-f]{32}$")

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in {
        400: "Invalid request",
        401: "Missing, wrong or revoked API key",
        404: "No such video for this key",
        429: "A limit of this key was reached (see retry-after)",
    }.items()
}

router = APIRouter(prefix="/v1", tags=["videos"], responses=_ERRORS)


def multipart_or_json(name: str) -> dict[str, Any]:
    """OpenAPI for a body that may be JSON or multipart (components added in app.py)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}},
                "multipart/form-data": {"schema": {"$ref": f"#/components/schemas/{name}Form"}},
            },
        }
    }


# --- bodies --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateBody:
    request: CreateVideoRequest
    image: Upload | None


@dataclass(frozen=True)
class EditBody:
    request: EditRequest
    video: Upload | None


@dataclass(frozen=True)
class ExtendBody:
    request: ExtendRequest
    video: Upload | None


def _only_files(files: dict[str, Upload], allowed: str) -> Upload | None:
    for name in files:
        if name != allowed:
            raise InvalidRequest(
                f"Unknown file parameter: '{name}'.", param=name, code="unknown_parameter"
            )
    return files.get(allowed)


async def create_body(request: Request, settings: SettingsDep) -> CreateBody:
    body = await read_body(request, max_file_bytes=settings.max_image_bytes)
    image = _only_files(body.files, "input_reference")
    return CreateBody(parse_request(CreateVideoRequest, body.fields), image)


async def remix_body(request: Request, settings: SettingsDep) -> RemixRequest:
    body = await read_body(request, max_file_bytes=settings.max_image_bytes)
    _only_files(body.files, "")
    return parse_request(RemixRequest, body.fields)


async def edit_body(request: Request, settings: SettingsDep) -> EditBody:
    body = await read_body(request, max_file_bytes=settings.max_video_bytes)
    video = _only_files(body.files, "video")
    return EditBody(parse_request(EditRequest, body.fields), video)


async def extend_body(request: Request, settings: SettingsDep) -> ExtendBody:
    body = await read_body(request, max_file_bytes=settings.max_video_bytes)
    video = _only_files(body.files, "video")
    return ExtendBody(parse_request(ExtendRequest, body.fields), video)


async def video_id_path(video_id: Annotated[str, Path()]) -> str:
    """Ids that cannot exist are 404 before reaching the database."""
    if not VIDEO_ID.match(video_id):
        raise NotFound(
            f"No video found with id '{video_id}'.", param="video_id", code="video_not_found"
        )
    return video_id


VideoId = Annotated[str, Depends(video_id_path)]


def present(job: Job, response: Response, settings: Settings) -> VideoObject:
    """The Video object, with the poll-after hint the SDK's poll() waits by."""
    response.headers["openai-poll-after-ms"] = str(settings.poll_after_ms)
    return VideoObject.from_job(job)


# --- endpoints -----------------------------------------------------------------------------


@router.post("/videos", openapi_extra=multipart_or_json("CreateVideoRequest"))
def create_video(
    key: CurrentKey,
    body: Annotated[CreateBody, Depends(create_body)],
    videos: Videos,
    settings: SettingsDep,
    response: Response,
) -> VideoObject:
    """Queue a generation job."""
    return present(videos.create(key, body.request, body.image), response, settings)


@router.get("/videos")
def list_videos(
    key: CurrentKey,
    videos: Videos,
    after: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
) -> VideoList:
    """The caller's videos, newest first by default, `limit` at a time."""
    if after is not None and not VIDEO_ID.match(after):
        raise InvalidRequest(f"Invalid 'after': no video found with id '{after}'.", param="after")
    jobs, has_more = videos.page(key, after=after, limit=limit, order=order)
    data = [VideoObject.from_job(job) for job in jobs]
    return VideoList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=has_more,
    )


@router.get("/videos/{video_id}")
def retrieve_video(
    key: CurrentKey, video_id: VideoId, videos: Videos, settings: SettingsDep, response: Response
) -> VideoObject:
    return present(videos.retrieve(key, video_id), response, settings)


@router.delete("/videos/{video_id}")
def delete_video(key: CurrentKey, video_id: VideoId, videos: Videos) -> VideoDeleted:
    """Delete the video and its files; a queued or running job is cancelled."""
    videos.delete(key, video_id)
    return VideoDeleted(id=video_id)


@router.get(
    "/videos/{video_id}/content",
    response_class=FileResponse,
    responses={
        200: {
            "content": {"video/mp4": {}, "image/webp": {}, "image/jpeg": {}},
            "description": "The file",
        },
        409: {"model": ErrorResponse, "description": "The video is not completed"},
    },
)
def download_content(
    key: CurrentKey,
    video_id: VideoId,
    videos: Videos,
    variant: Literal["video", "thumbnail", "spritesheet"] = "video",
) -> FileResponse:
    """The mp4 (default), a webp thumbnail or a jpeg spritesheet."""
    content = videos.content(key, video_id, variant)
    return FileResponse(content.path, media_type=content.media_type)


@router.post("/videos/{video_id}/remix", openapi_extra=multipart_or_json("RemixRequest"))
def remix_video(
    key: CurrentKey,
    video_id: VideoId,
    body: Annotated[RemixRequest, Depends(remix_body)],
    videos: Videos,
    settings: SettingsDep,
    response: Response,
) -> VideoObject:
    """The same seed and settings as the source, with a new prompt."""
    return present(videos.remix(key, video_id, body), response, settings)


@router.post("/videos/edits", openapi_extra=multipart_or_json("EditRequest"))
def edit_video(
    key: CurrentKey,
    body: Annotated[EditBody, Depends(edit_body)],
    videos: Videos,
    settings: SettingsDep,
    response: Response,
) -> VideoObject:
    """A new video from the source's first frame, following the new prompt."""
    return present(videos.edit(key, body.request, body.video), response, settings)


@router.post("/videos/extensions", openapi_extra=multipart_or_json("ExtendRequest"))
def extend_video(
    key: CurrentKey,
    body: Annotated[ExtendBody, Depends(extend_body)],
    videos: Videos,
    settings: SettingsDep,
    response: Response,
) -> VideoObject:
    """The source followed by `seconds` more, continuing its last frames."""
    return present(videos.extend(key, body.request, body.video), response, settings)
