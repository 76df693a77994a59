import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from app.core.dtos import AdminChanges, PasswordChange, ProfileChanges, RegisterInput
from app.core.value_objects.email import MAX_EMAIL_LENGTH
from app.infra.api.dependencies import (
    AdminUpdateCase,
    ChangePasswordCase,
    CurrentUser,
    DeleteUserCase,
    GetUserCase,
    ListUsersCase,
    Register,
    UpdateProfileCase,
)
from app.infra.api.schemas.users import (
    AdminUpdateRequest,
    ErrorResponse,
    PasswordChangeRequest,
    ProfileUpdateRequest,
    RegisterRequest,
    UserPageResponse,
    UserResponse,
)

router = APIRouter(prefix="/users", tags=["users"])


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "A value breaks a domain rule",
        401: "Missing, invalid, expired or revoked bearer token",
        403: "Not enough permissions",
        404: "User not found",
        409: "Conflicts with the current state",
    }
    return {c: {"model": ErrorResponse, "description": descriptions[c]} for c in codes}


@router.post(
    "", status_code=status.HTTP_201_CREATED, responses=_errors(400, 409), summary="Register"
)
async def register(body: RegisterRequest, usecase: Register, response: Response) -> UserResponse:
    user = await usecase.execute(RegisterInput(body.email, body.password, body.name))
    response.headers["Location"] = f"/users/{user.id}"
    return UserResponse.from_dto(user)


@router.get("/me", responses=_errors(401), summary="The current user")
async def read_me(me: CurrentUser) -> UserResponse:
    return UserResponse.from_dto(me)


@router.patch("/me", responses=_errors(400, 401, 409), summary="Change own name or email")
async def update_me(
    body: ProfileUpdateRequest, me: CurrentUser, usecase: UpdateProfileCase
) -> UserResponse:
    user = await usecase.execute(me, ProfileChanges(name=body.name, email=body.email))
    return UserResponse.from_dto(user)


@router.post(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_errors(400, 401),
    summary="Change own password; earlier tokens stop working",
)
async def change_password(
    body: PasswordChangeRequest, me: CurrentUser, usecase: ChangePasswordCase
) -> None:
    await usecase.execute(me, PasswordChange(body.current_password, body.new_password))


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_errors(401, 409),
    summary="Delete own account",
)
async def delete_me(me: CurrentUser, usecase: DeleteUserCase) -> None:
    await usecase.execute(me, me.id)


@router.get("", responses=_errors(400, 401, 403), summary="List users (admin)")
async def list_users(
    me: CurrentUser,
    usecase: ListUsersCase,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    email: Annotated[
        str | None, Query(max_length=MAX_EMAIL_LENGTH, description="Case-insensitive prefix")
    ] = None,
) -> UserPageResponse:
    return UserPageResponse.from_page(await usecase.execute(me, limit, cursor, email))


@router.get("/{user_id}", responses=_errors(401, 403, 404), summary="Get a user")
async def get_user(user_id: uuid.UUID, me: CurrentUser, usecase: GetUserCase) -> UserResponse:
    return UserResponse.from_dto(await usecase.execute(me, user_id))


@router.patch(
    "/{user_id}", responses=_errors(400, 401, 403, 404, 409), summary="Change a user (admin)"
)
async def update_user(
    user_id: uuid.UUID, body: AdminUpdateRequest, me: CurrentUser, usecase: AdminUpdateCase
) -> UserResponse:
    changes = AdminChanges(
        name=body.name, email=body.email, role=body.role, is_active=body.is_active
    )
    return UserResponse.from_dto(await usecase.execute(me, user_id, changes))


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_errors(401, 403, 404, 409),
    summary="Delete a user (admin, or the user itself)",
)
async def delete_user(user_id: uuid.UUID, me: CurrentUser, usecase: DeleteUserCase) -> None:
    await usecase.execute(me, user_id)
