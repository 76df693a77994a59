import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.core.dtos import AdminChanges, PasswordChange, ProfileChanges, RegisterInput
from app.core.usecases.list_users import MAX_PAGE_SIZE
from app.core.value_objects.email import MAX_EMAIL_LENGTH
from app.infra.api.dependencies import (
    AdminUpdateUserCase,
    ChangePasswordCase,
    CurrentUser,
    DeleteUserCase,
    GetUserCase,
    ListUsersCase,
    RegisterUserCase,
    UpdateProfileCase,
)
from app.infra.api.schemas.errors import HASHING_503, error_responses
from app.infra.api.schemas.users import (
    AdminUpdateRequest,
    PasswordChangeRequest,
    ProfileUpdateRequest,
    RegisterRequest,
    UserPageResponse,
    UserResponse,
)

router = APIRouter(prefix="/users", tags=["users"])


# Every status each route can answer, with its body (schemas/errors.py).
_LOCATION = {
    "Location": {
        "description": "The new user: `/users/{id}`",
        "required": True,
        "schema": {"type": "string", "pattern": "^/users/[0-9a-f-]{36}$"},
    }
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        201: {"headers": _LOCATION},
        **error_responses(400, 409, 413, 422, 503, d409="User already exists", d503=HASHING_503),
    },
    summary="Register",
)
async def register(
    body: RegisterRequest, usecase: RegisterUserCase, response: Response
) -> UserResponse:
    user = await usecase.execute(RegisterInput(body.email, body.password, body.name))
    response.headers["Location"] = f"/users/{user.id}"
    return UserResponse.from_dto(user)


# Served by CurrentUserFastPath (app/infra/api/current_user_fast_path.py), which
# answers exactly as this route; the route documents the endpoint and serves
# what the fast path declines (e.g. under a root path).
@router.get("/me", responses=error_responses(401, 503), summary="The current user")
async def read_me(me: CurrentUser) -> UserResponse:
    return UserResponse.from_dto(me)


@router.patch(
    "/me",
    responses=error_responses(400, 401, 409, 413, 422, 503, d409="Email taken"),
    summary="Change own name or email",
)
async def update_me(
    body: ProfileUpdateRequest, me: CurrentUser, usecase: UpdateProfileCase
) -> UserResponse:
    user = await usecase.execute(me, ProfileChanges(name=body.name, email=body.email))
    return UserResponse.from_dto(user)


@router.post(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(
        400,
        401,
        413,
        422,
        429,
        503,
        d400="Wrong current password, weak new one, or a body that cannot be parsed",
        d429="Too many wrong current passwords (they count against the login lockout of the "
        "account's email); retry after `Retry-After` seconds",
        d503=HASHING_503,
    ),
    summary="Change own password; earlier tokens stop working",
)
async def change_password(
    body: PasswordChangeRequest, me: CurrentUser, usecase: ChangePasswordCase
) -> None:
    await usecase.execute(me, PasswordChange(body.current_password, body.new_password))


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 409, 503, d409="The last active admin"),
    summary="Delete own account",
)
async def delete_me(me: CurrentUser, usecase: DeleteUserCase) -> None:
    await usecase.execute(me, me.id)


@router.get(
    "",
    responses=error_responses(400, 401, 403, 422, 503, d400="Invalid cursor"),
    summary="List users (admin)",
)
async def list_users(
    me: CurrentUser,
    usecase: ListUsersCase,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    email: Annotated[
        str | None, Query(max_length=MAX_EMAIL_LENGTH, description="Case-insensitive prefix")
    ] = None,
) -> UserPageResponse:
    return UserPageResponse.from_page(await usecase.execute(me, limit, cursor, email))


@router.get(
    "/{user_id}",
    responses=error_responses(
        401, 403, 404, 422, 503, d403="A non-admin asking for another id, existing or not"
    ),
    summary="Get a user",
)
async def get_user(user_id: uuid.UUID, me: CurrentUser, usecase: GetUserCase) -> UserResponse:
    return UserResponse.from_dto(await usecase.execute(me, user_id))


@router.patch(
    "/{user_id}",
    responses=error_responses(
        400, 401, 403, 404, 409, 413, 422, 503, d409="Email taken, or the last active admin"
    ),
    summary="Change a user (admin)",
)
async def update_user(
    user_id: uuid.UUID, body: AdminUpdateRequest, me: CurrentUser, usecase: AdminUpdateUserCase
) -> UserResponse:
    changes = AdminChanges(
        name=body.name, email=body.email, role=body.role, is_active=body.is_active
    )
    return UserResponse.from_dto(await usecase.execute(me, user_id, changes))


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(
        401,
        403,
        404,
        409,
        422,
        503,
        d403="A non-admin naming another id, existing or not",
        d409="The last active admin",
    ),
    summary="Delete a user (admin, or the user itself)",
)
async def delete_user(user_id: uuid.UUID, me: CurrentUser, usecase: DeleteUserCase) -> None:
    await usecase.execute(me, user_id)
