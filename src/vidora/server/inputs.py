"""Reading request bodies (JSON or multipart) and the images and videos they carry.

The `openai` client sends create, edit and extend as multipart even without a file, with
nested objects flattened the way `qs` writes them (`input_reference[image_url]=...`,
`video[id]=...`); curl users send JSON. Both become the same dict here, so one pydantic
model validates either. Every failure is an InvalidRequest or PayloadTooLarge naming the
field, never a decoder's stack trace.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import Request
from PIL import Image, UnidentifiedImageError
from starlette.datastructures import UploadFile
from starlette.types import Message

from vidora.server.errors import APIError, InvalidRequest, PayloadTooLarge

IMAGE_FORMATS = {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp"}
MAX_IMAGE_PIXELS = 40_000_000
"""Refuse decompression bombs before decoding: a 20 MB PNG can hold gigapixels."""

_BRACKETS = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])+)$")
_DATA_URL = re.compile(
    r"^data:(?P<type>[\w/+.-]*)(?P<params>(?:;[\w=.+-]+)*?)(?P<b64>;base64)?,(?P<data>.*)$", re.S
)


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart body."""

    field: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass(frozen=True)
class Body:
    """A request body as plain fields plus any uploaded files, by field name."""

    fields: dict[str, Any]
    files: dict[str, Upload]


async def read_body(request: Request, *, max_file_bytes: int) -> Body:
    """Parse JSON, multipart or url-encoded bodies into one shape."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    declared = request.headers.get("content-length")
    limit = max_file_bytes * 4 // 3 + 1024 * 1024  # a data URL of the largest file, plus fields
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body is {int(declared)} bytes; the limit is {limit} bytes.")
    request = _limited(request, limit)  # a body sent without Content-Length is counted as it comes
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return await _read_form(request, max_file_bytes, limit)
    if content_type in ("application/json", "") or content_type.endswith("+json"):
        raw = await request.body()
        if len(raw) > limit:
            raise PayloadTooLarge(f"Request body is {len(raw)} bytes; the limit is {limit} bytes.")
        if not raw.strip():
            raise InvalidRequest(
                "The request body is empty; send a JSON object.", code="invalid_json"
            )
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise InvalidRequest(
                f"The request body is not valid JSON: {error}.", code="invalid_json"
            ) from None
        if not isinstance(data, dict):
            raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
        return Body(fields=data, files={})
    raise InvalidRequest(
        f"Unsupported Content-Type {content_type!r}: send application/json or multipart/form-data.",
        code="unsupported_content_type",
    )


def _limited(request: Request, limit: int) -> Request:
    """The same request, whose body stops with PayloadTooLarge after `limit` bytes."""
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise PayloadTooLarge(f"Request body is over the limit of {limit} bytes.")
        return message

    return Request(request.scope, receive)


async def _read_form(request: Request, max_file_bytes: int, limit: int) -> Body:
    try:
        form = await request.form(max_files=4, max_fields=64, max_part_size=limit)
    except APIError:
        raise
    except Exception as error:  # Starlette raises its own types for every malformed body
        detail = getattr(error, "detail", None) or getattr(error, "message", None) or str(error)
        raise InvalidRequest(f"Malformed form body: {detail}", code="invalid_multipart") from None
    fields: dict[str, Any] = {}
    files: dict[str, Upload] = {}
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read(max_file_bytes + 1)
                if len(data) > max_file_bytes:
                    raise PayloadTooLarge(
                        f"Invalid '{name}': over the {max_file_bytes // 2**20} MB limit.",
                        param=name,
                    )
                files[name] = Upload(name, value.filename, value.content_type, data)
            else:
                _assign(fields, name, value)
    finally:
        await form.close()
    return Body(fields=fields, files=files)


def _assign(target: dict[str, Any], name: str, value: str) -> None:
    """`a[b][c]=v` -> target['a']['b']['c'] = v; a plain name is set directly."""
    match = _BRACKETS.match(name)
    if match is None:
        target[name] = value
        return
    keys = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
    node = target
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise InvalidRequest(f"Invalid '{name}': conflicts with another field.", param=keys[0])
        node = child
    node[keys[-1]] = value


def decode_data_url(url: str, *, param: str, max_bytes: int) -> bytes:
    """The bytes of a base64 `data:` URL; remote URLs are refused (the server fetches nothing)."""
    match = _DATA_URL.match(url.strip())
    if match is None:
        if url.startswith(("http://", "https://")):
            raise InvalidRequest(
                f"Invalid '{param}': remote image URLs are not fetched; upload the file or send a "
                "data URL (data:image/png;base64,...).",
                param=param,
                code="unsupported_url",
            )
        raise InvalidRequest(
            f"Invalid '{param}': expected a data URL such as data:image/png;base64,....",
            param=param,
            code="invalid_image_url",
        )
    if not match.group("b64"):
        raise InvalidRequest(
            f"Invalid '{param}': the data URL must be base64 encoded.", param=param
        )
    payload = match.group("data")
    if len(payload) * 3 // 4 > max_bytes:
        raise PayloadTooLarge(
            f"Invalid '{param}': the image is over the {max_bytes // (1024 * 1024)} MB limit.",
            param=param,
        )
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(
            f"Invalid '{param}': the data URL is not valid base64.", param=param
        ) from None


def decode_image(data: bytes, *, param: str) -> np.ndarray:
    """(H, W, 3) uint8 from jpeg, png or webp bytes; anything else is a 400 naming `param`."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in IMAGE_FORMATS:
                raise InvalidRequest(
                    f"Invalid '{param}': {image.format or 'this'} images are not accepted; "
                    "send jpeg, png or webp.",
                    param=param,
                    code="invalid_image_format",
                )
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise InvalidRequest(
                    f"Invalid '{param}': {image.width}x{image.height} is too many pixels.",
                    param=param,
                    code="invalid_image",
                )
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise InvalidRequest(
            f"Invalid '{param}': not a readable image (jpeg, png or webp).",
            param=param,
            code="invalid_image",
        ) from None


def fit_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre-crop and scale every frame to the size (what `input_reference` gets too)."""
    from vidora.media import fit_image

    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([fit_image(frame, width, height) for frame in frames])


def closest_size(width: int, height: int, sizes: tuple[str, ...]) -> str:
    """The offered size whose aspect ratio is nearest the upload's (ties: the first)."""
    aspect = width / height

    def distance(size: str) -> float:
        w, h = (int(part) for part in size.split("x"))
        return abs(np.log((w / h) / aspect))

    return min(sizes, key=distance)
