"""All dependency wiring. Routes declare what they need with these aliases;
tests swap pieces through `app.dependency_overrides`. Every provider is
`async def`: FastAPI runs plain `def` ones on a thread pool, per request."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from app.core.dtos import UserDTO
from app.core.exceptions import Unauthenticated
from app.core.ports import (
    Clock,
    LoginThrottle,
    PasswordHasher,
    TokenIssuer,
    UserReader,
    UserUnitOfWork,
)
from app.core.usecases.admin_update_user import AdminUpdateUser
from app.core.usecases.authenticate_user import AuthenticateUser
from app.core.usecases.change_password import ChangePassword
from app.core.usecases.delete_user import DeleteUser
from app.core.usecases.get_user import GetUser
from app.core.usecases.list_users import ListUsers
from app.core.usecases.register_user import RegisterUser
from app.core.usecases.resolve_current_user import ResolveCurrentUser
from app.core.usecases.update_profile import UpdateProfile
from app.infra.api.errors import TOKEN_URL
from app.infra.db.unit_of_work import SqlUserUnitOfWork

# Declares the scheme in OpenAPI so Swagger UI's Authorize button logs in
# through the token endpoint; we raise our own 401s.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


async def get_uow(request: Request) -> UserUnitOfWork:
    return SqlUserUnitOfWork(request.app.state.sessionmaker)


async def get_reader(request: Request) -> UserReader:
    reader: UserReader = request.app.state.reader
    return reader


async def get_hasher(request: Request) -> PasswordHasher:
    hasher: PasswordHasher = request.app.state.hasher
    return hasher


async def get_tokens(request: Request) -> TokenIssuer:
    tokens: TokenIssuer = request.app.state.tokens
    return tokens


async def get_throttle(request: Request) -> LoginThrottle:
    throttle: LoginThrottle = request.app.state.throttle
    return throttle


async def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


UoW = Annotated[UserUnitOfWork, Depends(get_uow)]
Reader = Annotated[UserReader, Depends(get_reader)]
Hasher = Annotated[PasswordHasher, Depends(get_hasher)]
Tokens = Annotated[TokenIssuer, Depends(get_tokens)]
Throttle = Annotated[LoginThrottle, Depends(get_throttle)]
SystemClock = Annotated[Clock, Depends(get_clock)]
BearerToken = Annotated[str | None, Depends(oauth2_scheme)]


async def get_current_user(token: BearerToken, users: Reader, tokens: Tokens) -> UserDTO:
    if not token:
        raise Unauthenticated()
    return await ResolveCurrentUser(users, tokens).execute(token)


CurrentUser = Annotated[UserDTO, Depends(get_current_user)]


async def get_register(uow: UoW, hasher: Hasher, clock: SystemClock) -> RegisterUser:
    return RegisterUser(uow, hasher, clock)


async def get_authenticate(
    uow: UoW, hasher: Hasher, throttle: Throttle, tokens: Tokens
) -> AuthenticateUser:
    return AuthenticateUser(uow, hasher, throttle, tokens)


async def get_get_user(uow: UoW) -> GetUser:
    return GetUser(uow)


async def get_list_users(uow: UoW) -> ListUsers:
    return ListUsers(uow)


async def get_update_profile(uow: UoW, clock: SystemClock) -> UpdateProfile:
    return UpdateProfile(uow, clock)


async def get_change_password(
    uow: UoW, hasher: Hasher, throttle: Throttle, clock: SystemClock
) -> ChangePassword:
    return ChangePassword(uow, hasher, throttle, clock)


async def get_admin_update(uow: UoW, clock: SystemClock) -> AdminUpdateUser:
    return AdminUpdateUser(uow, clock)


async def get_delete_user(uow: UoW) -> DeleteUser:
    return DeleteUser(uow)


Register = Annotated[RegisterUser, Depends(get_register)]
Authenticate = Annotated[AuthenticateUser, Depends(get_authenticate)]
GetUserCase = Annotated[GetUser, Depends(get_get_user)]
ListUsersCase = Annotated[ListUsers, Depends(get_list_users)]
UpdateProfileCase = Annotated[UpdateProfile, Depends(get_update_profile)]
ChangePasswordCase = Annotated[ChangePassword, Depends(get_change_password)]
AdminUpdateCase = Annotated[AdminUpdateUser, Depends(get_admin_update)]
DeleteUserCase = Annotated[DeleteUser, Depends(get_delete_user)]
