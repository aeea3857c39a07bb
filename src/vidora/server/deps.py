"""Annotated dependencies, so routes read as prose: `def retrieve(key: CurrentKey, ...)`.

The trivial ones are `async def`: FastAPI runs a sync dependency in its thread pool, and a
thread hop per lookup is most of a retrieve's cost under load. The key check touches the
database, so it stays sync (in the pool).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from vidora.server.keys import ApiKey
from vidora.server.registry import Registry
from vidora.server.services import Services
from vidora.server.settings import Settings
from vidora.server.videos import VideoService

_bearer = HTTPBearer(auto_error=False, description="An API key from `vidora keys create NAME`.")


async def get_services(request: Request) -> Services:
    return request.app.state.services


async def get_settings(request: Request) -> Settings:
    return request.app.state.services.settings


async def get_registry(request: Request) -> Registry:
    return request.app.state.services.registry


async def get_videos(request: Request) -> VideoService:
    return request.app.state.services.videos


def current_key(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey | None:
    """The caller's key (None when auth is off), counted against its request rate."""
    services: Services = request.app.state.services
    if not services.settings.auth:
        return None
    key = services.keys.authenticate(request.headers.get("authorization"))
    request.state.key_name = key.name
    services.limiter.check_request(key)
    return key


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
Videos = Annotated[VideoService, Depends(get_videos)]
CurrentKey = Annotated[ApiKey | None, Depends(current_key)]
