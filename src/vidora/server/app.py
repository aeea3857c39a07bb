"""The application factory: `create_app(settings)` and `serve(...)` for `vidora serve`."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vidora import __version__
from vidora.server.errors import install_error_handlers
from vidora.server.logs import configure_logging
from vidora.server.metrics import Metrics
from vidora.server.protocol import CreateVideoRequest, EditRequest, ExtendRequest, RemixRequest
from vidora.server.routes import models, ops, videos
from vidora.server.services import Services, build_services
from vidora.server.settings import Settings

log = logging.getLogger("vidora.server")

DESCRIPTION = """\
OpenAI-compatible Videos API served by Vidora. Point the official `openai` client at it
with `OpenAI(base_url="http://HOST:PORT/v1", api_key="sk-vidora-...")`.
`input_reference` images are fitted to `size` (centre-crop and scale)."""


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    """An app over `services` (built from `settings`); its threads start with the app."""
    settings = settings or (services.settings if services else Settings.from_env())
    services = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services.start(worker=settings.embedded_worker)
        if settings.auth and not services.keys.list():
            log.warning(
                "no API keys yet: every request will be refused until `vidora keys create NAME`"
            )
        log.info(
            "server started",
            extra={
                "db": services.db.engine.url.render_as_string(),
                "worker": settings.embedded_worker,
            },
        )
        try:
            yield
        finally:
            services.stop()

    app = FastAPI(
        title="Vidora Videos API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.services = services
    install_error_handlers(app)
    app.include_router(videos.router)
    app.include_router(models.router)
    app.include_router(ops.router)
    if settings.studio:
        from vidora.studio.app import mount_studio  # gradio loads only when the studio is on

        mount_studio(app, services)
    app.add_middleware(RequestLog, metrics=services.metrics)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


class RequestLog:
    """One structured log line and two metrics per request (plain ASGI: no extra task)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.http_requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.http_seconds.labels(route).observe(seconds)
            if route not in ("/metrics", "/healthz") and not scope["path"].startswith("/studio"):
                extra: dict[str, Any] = {
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "ms": round(seconds * 1000, 1),
                }
                video_id = scope.get("path_params", {}).get("video_id")
                if video_id:
                    extra["video_id"] = video_id
                key_name = scope.get("state", {}).get("key_name")
                if key_name:
                    extra["key"] = key_name
                log.info("request", extra=extra)


_BODIES: tuple[tuple[type[BaseModel], str | None], ...] = (
    (CreateVideoRequest, "input_reference"),
    (RemixRequest, None),
    (EditRequest, "video"),
    (ExtendRequest, "video"),
)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the JSON and multipart body schemas the routes parse themselves."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model, file_field in _BODIES:
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(body.pop("$defs", {}))
        components[model.__name__] = body
        form = copy.deepcopy(body)
        if file_field:
            form["properties"][file_field] = {
                "type": "string",
                "format": "binary",
                "description": "An image (input_reference) or a video (edits, extensions).",
            }
        components[model.__name__ + "Form"] = form
    app.openapi_schema = schema
    return schema


def serve(settings: Settings, *, host: str, port: int) -> None:
    """Run the API (and its embedded worker) until interrupted."""
    import uvicorn

    configure_logging(settings.log_format, settings.log_level)
    app = create_app(settings)
    uvicorn.run(
        app, host=host, port=port, log_config=None, access_log=False, timeout_graceful_shutdown=10
    )
