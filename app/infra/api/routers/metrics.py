"""GET /metrics, in Prometheus's text format (only with METRICS_ENABLED=true),
and the sampling of the gauges that describe a process rather than a request."""

import asyncio
import contextlib
import hmac
import logging

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from app.infra.api.services import Services, services_of
from app.infra.metrics import CONTENT_TYPE, Metrics
from app.logger import writer

log = logging.getLogger(__name__)


def metrics_router(metrics: Metrics, token: str | None) -> APIRouter:
    router = APIRouter(tags=["operations"])
    expected = f"Bearer {token}".encode() if token else None

    # Not in the OpenAPI document: it is for Prometheus, not for API clients.
    @router.get("/metrics", include_in_schema=False)
    async def scrape(request: Request) -> Response:
        if expected is not None:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                raise HTTPException(401, "Not authenticated", {"WWW-Authenticate": "Bearer"})
        services = services_of(request.app)
        sample(services, metrics)
        await count_outbox(services, metrics)
        return Response(
            await run_in_threadpool(metrics.exposition),
            media_type=CONTENT_TYPE,
            headers={"Cache-Control": "no-store"},
        )

    return router


def sample(services: Services, metrics: Metrics) -> None:
    """This process's gauges, as they are now."""
    pool = services.engine.pool
    checkedout = getattr(pool, "checkedout", None)
    log_writer = writer()
    metrics.sample(
        hash_waiting=getattr(services.hasher, "waiting", 0),
        pool_in_use=checkedout() if callable(checkedout) else None,
        dropped_lines=log_writer.dropped if log_writer else 0,
    )


async def count_outbox(services: Services, metrics: Metrics) -> None:
    try:
        pending, failed = await services.mail.backlog()
    except Exception as exc:  # the scrape still answers; the gauges keep their last values
        log.warning("metrics: outbox not counted: %s", type(exc).__name__)
        return
    metrics.outbox(pending, failed)


async def sample_periodically(services: Services, metrics: Metrics, every: float) -> None:
    """Keeps this process's gauges fresh for scrapes served by other workers."""
    while True:
        with contextlib.suppress(Exception):
            sample(services, metrics)
        await asyncio.sleep(every)
