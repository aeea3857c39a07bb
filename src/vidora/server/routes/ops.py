"""Operations endpoints (no key): `/healthz` for load balancers, `/metrics` for Prometheus."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from sqlalchemy import func, select

from vidora.server.db import workers
from vidora.server.deps import ServicesDep
from vidora.server.jobs import QUEUED
from vidora.server.metrics import CONTENT_TYPE

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz(services: ServicesDep) -> JSONResponse:
    """200 when the database answers; also the queue depth and workers seen recently."""
    body: dict[str, Any] = {"status": "ok"}
    try:
        body["queue_depth"] = services.queue.counts_by_status().get(QUEUED, 0)
        since = time.time() - max(30.0, 2 * services.settings.lease_seconds)
        with services.db.read() as conn:
            body["workers"] = conn.execute(
                select(func.count()).select_from(workers).where(workers.c.last_seen > since)
            ).scalar_one()
    except Exception as error:
        return JSONResponse(
            {"status": "unavailable", "error": f"database: {type(error).__name__}"}, 503
        )
    return JSONResponse(body)


@router.get("/metrics")
def metrics(services: ServicesDep) -> Response:
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)
