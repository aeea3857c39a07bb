"""Bad input of every kind gets the right status and an OpenAI-shaped error body."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from harness import Deployment
from PIL import Image

from vidora.weights import BUILTIN_MODEL

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MAX_IMAGE = 200_000  # the server under test takes images up to 200 kB (20 MB by default)


class Api:
    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.proc = deployment.server(env={"VIDORA_MAX_IMAGE_BYTES": str(MAX_IMAGE)})
        self.key = deployment.key("tester")
        self.http = httpx.Client(
            base_url=self.proc.base_url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        )

    def error(
        self, response: httpx.Response, status: int, *, param: Any = ..., code: Any = ...
    ) -> str:
        """Check status and shape; return the message."""
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert set(body) == {"error"}
        assert set(body["error"]) == {"message", "type", "param", "code"}
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        expected_type = {
            400: "invalid_request_error",
            401: "authentication_error",
            404: "not_found_error",
            409: "invalid_request_error",
            413: "invalid_request_error",
            429: "rate_limit_error",
        }.get(status)
        if expected_type:
            assert body["error"]["type"] == expected_type
        if param is not ...:
            assert body["error"]["param"] == param
        if code is not ...:
            assert body["error"]["code"] == code
        return body["error"]["message"]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    deployment = Deployment(tmp_path_factory.mktemp("errors"))
    try:
        yield Api(deployment)
    finally:
        deployment.close()


def image_bytes(fmt: str, size: tuple[int, int] = (32, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("body", "param", "code", "says"),
    [
        ({}, "prompt", "missing_required_parameter", "prompt"),
        ({"prompt": ""}, "prompt", "invalid_value", "at least 1"),
        ({"prompt": "   "}, "prompt", "invalid_value", "some text"),
        ({"prompt": "x" * 32001}, "prompt", "invalid_value", "32000"),
        ({"prompt": 123}, "prompt", "invalid_value", "string"),
        ({"prompt": "ok", "model": "sora-9"}, "model", "model_not_found", BUILTIN_MODEL),
        ({"prompt": "ok", "seconds": "5"}, "seconds", "invalid_seconds", '"4", "8", "12"'),
        ({"prompt": "ok", "seconds": "four"}, "seconds", "invalid_value", "seconds"),
        ({"prompt": "ok", "seconds": True}, "seconds", "invalid_value", "seconds"),
        ({"prompt": "ok", "size": "720x1280"}, "size", "invalid_size", "64x64, 96x64, 64x96"),
        ({"prompt": "ok", "size": 64}, "size", "invalid_value", "string"),
        ({"prompt": "ok", "input_reference": "a.png"}, "input_reference", "invalid_value", ""),
        (
            {"prompt": "ok", "input_reference": {"image_url": "https://example.com/a.png"}},
            "input_reference.image_url",
            "unsupported_url",
            "data URL",
        ),
        (
            {"prompt": "ok", "input_reference": {"image_url": "data:image/png;base64,@@@"}},
            "input_reference.image_url",
            "invalid_value",
            "base64",
        ),
        (
            {"prompt": "ok", "input_reference": {"image_url": "data:text/plain;base64,aGVsbG8="}},
            "input_reference.image_url",
            "invalid_image",
            "jpeg, png or webp",
        ),
        (
            {"prompt": "ok", "input_reference": {"file_id": "file_123"}},
            "input_reference.file_id",
            "unsupported_parameter",
            "Files API",
        ),
        ({"prompt": "ok", "input_reference": {}}, "input_reference.image_url", None, ""),
        (
            {"prompt": "ok", "input_reference": {"url": "x"}},
            "input_reference.url",
            "unknown_parameter",
            "",
        ),
        ({"prompt": "ok", "colour": "red"}, "colour", "unknown_parameter", "Unknown parameter"),
        ({"prompt": "ok", "seed": -1}, "seed", "invalid_value", "greater than or equal to 0"),
        ({"prompt": "ok", "steps": 0}, "steps", "invalid_value", ""),
        ({"prompt": "ok", "guidance": "high"}, "guidance", "invalid_value", ""),
        ({"prompt": "a\x00b"}, "prompt", "invalid_value", "NUL"),
    ],
)
def test_every_create_field_wrong_in_turn(
    api: Api, body: dict[str, Any], param: str, code: str | None, says: str
) -> None:
    response = api.http.post("/videos", json=body)
    expected = {"param": param} if code is None else {"param": param, "code": code}
    assert says in api.error(response, 400, **expected)


def test_the_sdk_raises_its_own_error_classes(api: Api) -> None:
    client = openai.OpenAI(base_url=api.proc.base_url, api_key=api.key, max_retries=0)
    with pytest.raises(openai.BadRequestError) as bad:
        client.videos.create(prompt="ok", size="1280x720")
    assert bad.value.param == "size" and bad.value.code == "invalid_size"
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve("video_" + "0" * 32)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=api.proc.base_url, api_key="sk-wrong", max_retries=0).models.list()


@pytest.mark.parametrize(
    ("upload", "param", "code", "status"),
    [
        (("notes.txt", b"just text", "text/plain"), "input_reference", "invalid_image", 400),
        (
            ("a.gif", image_bytes("GIF"), "image/gif"),
            "input_reference",
            "invalid_image_format",
            400,
        ),
        (
            ("a.bmp", image_bytes("BMP"), "image/bmp"),
            "input_reference",
            "invalid_image_format",
            400,
        ),
        (
            ("a.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png"),
            "input_reference",
            "invalid_image",
            400,
        ),
        (
            ("big.png", b"\x00" * (MAX_IMAGE + 1), "image/png"),
            "input_reference",
            "payload_too_large",
            413,
        ),
    ],
)
def test_uploads_that_are_not_acceptable_images(
    api: Api, upload: tuple[str, bytes, str], param: str, code: str, status: int
) -> None:
    response = api.http.post("/videos", data={"prompt": "ok"}, files={"input_reference": upload})
    api.error(response, status, param=param, code=code)


def test_every_accepted_image_format_works(api: Api) -> None:
    for fmt in ("PNG", "JPEG", "WEBP"):
        response = api.http.post(
            "/videos", data={"prompt": "ok"}, files={"input_reference": ("i", image_bytes(fmt), "")}
        )
        assert response.status_code == 200, (fmt, response.text)


def test_oversized_bodies_are_refused_before_reading(api: Api) -> None:
    huge = "data:image/png;base64," + base64.b64encode(b"\x00" * (MAX_IMAGE * 2)).decode()
    response = api.http.post(
        "/videos", json={"prompt": "ok", "input_reference": {"image_url": huge}}
    )
    api.error(response, 413, code="payload_too_large")
    small_body = "data:image/png;base64," + base64.b64encode(b"\x00" * (MAX_IMAGE + 10)).decode()
    response = api.http.post(
        "/videos", data={"prompt": "ok", "input_reference[image_url]": small_body}
    )
    api.error(response, 413, param="input_reference.image_url")


@pytest.mark.parametrize(
    ("content", "content_type", "code"),
    [
        (b'{"prompt": "ok",', "application/json", "invalid_json"),
        (b"[1, 2]", "application/json", "invalid_json"),
        (b"", "application/json", "invalid_json"),
        (b"\xff\xfe", "application/json", "invalid_json"),
        (b"prompt=ok", "text/plain", "unsupported_content_type"),
        (
            b"--xyz\r\nContent-Disposition: form-data\r\n\r\nok\r\n",
            "multipart/form-data; boundary=xyz",
            None,
        ),
        (b"garbage", "multipart/form-data", "invalid_multipart"),
    ],
)
def test_malformed_bodies(api: Api, content: bytes, content_type: str, code: str | None) -> None:
    response = api.http.post("/videos", content=content, headers={"content-type": content_type})
    api.error(response, 400, **({} if code is None else {"code": code}))


def test_multipart_and_urlencoded_forms_are_accepted(api: Api) -> None:
    form = api.http.post("/videos", data={"prompt": "ok", "seconds": "8", "size": "64x96"})
    assert form.status_code == 200, form.text
    assert (form.json()["seconds"], form.json()["size"]) == ("8", "64x96")
    files = api.http.post(
        "/videos", files={"prompt": (None, "ok"), "extra": ("x.png", b"x", "image/png")}
    )
    api.error(files, 400, param="extra", code="unknown_parameter")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/videos/{id}"),
        ("DELETE", "/videos/{id}"),
        ("GET", "/videos/{id}/content"),
        ("POST", "/videos/{id}/remix"),
    ],
)
@pytest.mark.parametrize(
    "video_id", ["video_" + "a" * 32, "video_nope", "../etc/passwd", "x" * 200]
)
def test_unknown_ids_are_404(api: Api, method: str, path: str, video_id: str) -> None:
    body = {"prompt": "again"} if method == "POST" else None
    response = api.http.request(method, path.format(id=video_id), json=body)
    api.error(response, 404)


def test_edit_and_extend_refuse_missing_or_bad_sources(api: Api) -> None:
    api.error(api.http.post("/videos/edits", json={"prompt": "x"}), 400, param="video")
    api.error(
        api.http.post("/videos/edits", json={"prompt": "x", "video": {"id": "video_" + "b" * 32}}),
        404,
        param="video.id",
    )
    api.error(
        api.http.post(
            "/videos/edits",
            data={"prompt": "x"},
            files={"video": ("v.mp4", b"not a video", "video/mp4")},
        ),
        400,
        param="video",
        code="invalid_video",
    )
    api.error(api.http.post("/videos/extensions", json={"prompt": "x"}), 400, param="seconds")
    api.error(
        api.http.post(
            "/videos/extensions", json={"prompt": "x", "seconds": "5", "video": {"id": "video_1"}}
        ),
        404,
    )


def test_a_video_that_is_not_completed_cannot_be_used(api: Api) -> None:
    failed = api.http.post("/videos", json={"prompt": "[fail] please"}).json()
    client = openai.OpenAI(base_url=api.proc.base_url, api_key=api.key, max_retries=0)
    assert client.videos.poll(failed["id"]).status == "failed"
    remix = api.http.post(f"/videos/{failed['id']}/remix", json={"prompt": "again"})
    api.error(remix, 409, code="video_not_ready")
    assert remix.headers["x-should-retry"] == "false"  # so the SDK does not retry a 409
    extend = api.http.post(
        "/videos/extensions", json={"prompt": "x", "seconds": 4, "video": {"id": failed["id"]}}
    )
    api.error(extend, 409, param="video.id")
    ok = api.http.post("/videos", json={"prompt": "fine"}).json()
    done = client.videos.poll(ok["id"])
    api.error(
        api.http.post(
            "/videos/extensions", json={"prompt": "x", "seconds": "5", "video": {"id": done.id}}
        ),
        400,
        param="seconds",
    )


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"order": "sideways"}, "order"),
        ({"after": "video_" + "c" * 32}, "after"),
        ({"after": "nonsense"}, "after"),
    ],
)
def test_list_parameters(api: Api, params: dict[str, Any], param: str) -> None:
    api.error(api.http.get("/videos", params=params), 400, param=param)


def test_content_variant_must_be_known(api: Api) -> None:
    api.error(
        api.http.get("/videos/video_" + "d" * 32 + "/content", params={"variant": "gif"}),
        400,
        param="variant",
    )


def test_unknown_routes_and_methods_answer_in_json(api: Api) -> None:
    api.error(api.http.get("/nothing-here"), 404)
    assert api.error(api.http.put("/videos"), 405)
    assert api.error(api.http.patch("/models"), 405)


def test_authentication(api: Api) -> None:
    url = f"{api.proc.base_url}/videos"
    assert "didn't provide an API key" in api.error(httpx.get(url), 401, code="missing_api_key")
    api.error(
        httpx.get(url, headers={"Authorization": "Bearer sk-vidora-0123456789ab-nope"}),
        401,
        code="invalid_api_key",
    )
    api.error(httpx.get(url, headers={"Authorization": f"Basic {api.key}"}), 401)
    tampered = api.key[:-3] + ("aaa" if not api.key.endswith("aaa") else "bbb")
    api.error(
        httpx.get(url, headers={"Authorization": f"Bearer {tampered}"}), 401, code="invalid_api_key"
    )


def test_a_body_without_content_length_is_still_limited(api: Api) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"prompt": "ok", "input_reference": {"image_url": "data:image/png;base64,'
        for _ in range(40):  # 2.6 MB, over the 1.3 MB this server allows a body
            yield b"A" * 65536
        yield b'"}}'

    response = api.http.post(
        "/videos", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    api.error(response, 413, code="payload_too_large")
