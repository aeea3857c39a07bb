"""API errors and the one place that turns any failure into OpenAI's error JSON.

Services raise these exceptions; routes never build error responses. The handlers below
also cover FastAPI's validation errors, Starlette's 404/405 and unexpected exceptions, so a
client always receives `{"error": {"message", "type", "param", "code"}}`, which the `openai`
SDK maps to its exception classes by status.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("vidora.server")


class APIError(Exception):
    """An error with the status, type and code a client sees."""

    status: int = 500
    type: str = "server_error"
    default_code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


class InvalidRequest(APIError):
    status, type, default_code = 400, "invalid_request_error", "invalid_value"


class AuthenticationFailed(APIError):
    status, type, default_code = 401, "authentication_error", "invalid_api_key"


class PermissionDenied(APIError):
    status, type, default_code = 403, "permission_error", None


class NotFound(APIError):
    status, type, default_code = 404, "not_found_error", "not_found"


class Conflict(APIError):
    status, type, default_code = 409, "invalid_request_error", "conflict"


class PayloadTooLarge(APIError):
    status, type, default_code = 413, "invalid_request_error", "payload_too_large"


class Unprocessable(APIError):
    status, type, default_code = 422, "invalid_request_error", "unprocessable"


class RateLimited(APIError):
    status, type, default_code = 429, "rate_limit_error", "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        seconds = max(1, int(retry_after + 0.999))
        super().__init__(message, code=code, headers={"retry-after": str(seconds)})
        self.retry_after = seconds


class ServiceUnavailable(APIError):
    status, type, default_code = 503, "server_error", "unavailable"


_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def error_body(message: str, type_: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _api_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, APIError)
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def _validation_error(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's 422 list becomes one 400 naming the first bad field, as OpenAI answers."""
    assert isinstance(error, RequestValidationError)
    first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
    loc = [
        str(part)
        for part in first.get("loc", ())
        if part not in ("body", "query", "path", "header")
    ]
    param = ".".join(loc) or None
    message = str(first.get("msg", "invalid request"))
    text = f"Invalid '{param}': {message}" if param else message
    return JSONResponse(
        error_body(text, "invalid_request_error", param, "invalid_value"), status_code=400
    )


def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    type_ = _TYPE_BY_STATUS.get(
        error.status_code, "server_error" if error.status_code >= 500 else "invalid_request_error"
    )
    detail = error.detail if isinstance(error.detail, str) else "request failed"
    if error.status_code == 404:
        detail = f"Unknown URL: {request.method} {request.url.path}"
    elif error.status_code == 405:
        detail = f"Method {request.method} is not allowed on {request.url.path}"
    return JSONResponse(
        error_body(detail, type_, None, None),
        status_code=error.status_code,
        headers=dict(error.headers or {}),
    )


def _unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(
        error_body(
            "The server had an error while processing your request.", "server_error", None, None
        ),
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
