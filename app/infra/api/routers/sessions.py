import uuid

from fastapi import APIRouter, status

from app.core.value_objects import ID
from app.infra.api.dependencies import (
    AdminEndSessionsCase,
    CurrentCaller,
    CurrentUser,
    EndSessionCase,
    ListSessionsCase,
)
from app.infra.api.schemas.errors import error_responses
from app.infra.api.schemas.sessions import SessionListResponse, SessionResponse

router = APIRouter(prefix="/users", tags=["sessions"])


@router.get(
    "/me/sessions",
    responses=error_responses(401, 503),
    summary="Own live sessions, newest first",
)
async def list_my_sessions(caller: CurrentCaller, usecase: ListSessionsCase) -> SessionListResponse:
    sessions = await usecase.execute(caller)
    return SessionListResponse(items=[SessionResponse.from_dto(s) for s in sessions])


@router.delete(
    "/me/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 404, 422, 503, d404="Not a live session of the caller"),
    summary="End one of own sessions",
)
async def end_my_session(
    session_id: uuid.UUID, caller: CurrentCaller, usecase: EndSessionCase
) -> None:
    await usecase.execute(caller, ID(session_id))


@router.delete(
    "/{user_id}/sessions",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 422, 503),
    summary="End every session of a user (admin)",
)
async def end_user_sessions(
    user_id: uuid.UUID, me: CurrentUser, usecase: AdminEndSessionsCase
) -> None:
    await usecase.execute(me, ID(user_id))
