from fastapi import APIRouter, Response

from app.infra.api.dependencies import DatabasePing
from app.infra.api.schemas.errors import error_responses
from app.infra.api.schemas.health import HealthResponse

router = APIRouter(prefix="/health", tags=["operations"])


@router.get("", summary="The process is alive")
async def live() -> HealthResponse:
    return HealthResponse(status="ok")


@router.get(
    "/ready",
    summary="The database answers",
    responses=error_responses(503),
)
async def ready(ping: DatabasePing, response: Response) -> HealthResponse:
    await ping()
    response.headers["Cache-Control"] = "no-store"
    return HealthResponse(status="ok")
