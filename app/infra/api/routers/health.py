from fastapi import APIRouter, Request, Response
from sqlalchemy import text

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
async def ready(request: Request, response: Response) -> HealthResponse:
    async with request.app.state.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    response.headers["Cache-Control"] = "no-store"
    return HealthResponse(status="ok")
