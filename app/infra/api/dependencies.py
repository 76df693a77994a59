"""All dependency wiring. Routes declare what they need with these aliases;
tests swap pieces through `app.dependency_overrides` (which do not reach the
`GET /users/me` fast path: it builds its use case from the services itself).
Every provider is `async def`: FastAPI runs plain `def` ones on a thread
pool, per request.

Names: `get_<port>` provides a port and `<Port>Dep` is its alias;
`build_<use_case>` builds a use case and `<UseCase>Case` is its alias."""

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from app.core.dtos import Caller, UserDTO
from app.core.entities import RecoveryPolicy, SessionPolicy
from app.core.ports import (
    Clock,
    LoginThrottle,
    PasswordHasher,
    RefreshGrants,
    RequestLimiter,
    TokenIssuer,
    UserReader,
    UserUnitOfWork,
)
from app.core.usecases.admin_end_sessions import AdminEndSessions
from app.core.usecases.admin_update_user import AdminUpdateUser
from app.core.usecases.authenticate_user import AuthenticateUser
from app.core.usecases.change_password import ChangePassword
from app.core.usecases.delete_user import DeleteUser
from app.core.usecases.end_session import EndSession
from app.core.usecases.get_user import GetUser
from app.core.usecases.list_sessions import ListSessions
from app.core.usecases.list_users import ListUsers
from app.core.usecases.logout import Logout
from app.core.usecases.logout_all import LogoutAll
from app.core.usecases.refresh_session import RefreshSession
from app.core.usecases.register_user import RegisterUser
from app.core.usecases.request_account_mail import RequestAccountMail
from app.core.usecases.reset_password import ResetPassword
from app.core.usecases.resolve_current_user import ResolveCurrentUser
from app.core.usecases.revoke_token import RevokeToken
from app.core.usecases.update_profile import UpdateProfile
from app.core.usecases.verify_email import VerifyEmail
from app.infra.api.errors import TOKEN_URL
from app.infra.api.services import Services, services_of
from app.infra.db.ping import ping
from app.infra.db.unit_of_work import SqlUserUnitOfWork

# Declares the scheme in OpenAPI so Swagger UI's Authorize button logs in
# through the token endpoint; we raise our own 401s.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


async def get_uow(request: Request) -> UserUnitOfWork:
    return SqlUserUnitOfWork(services_of(request.app).sessionmaker)


async def get_reader(request: Request) -> UserReader:
    return services_of(request.app).reader


async def get_refresh_grants(request: Request) -> RefreshGrants:
    return services_of(request.app).refresh_grants


async def get_hasher(request: Request) -> PasswordHasher:
    return services_of(request.app).hasher


async def get_tokens(request: Request) -> TokenIssuer:
    return services_of(request.app).tokens


async def get_throttle(request: Request) -> LoginThrottle:
    return services_of(request.app).throttle


async def get_clock(request: Request) -> Clock:
    return services_of(request.app).clock


async def get_session_policy(request: Request) -> SessionPolicy:
    return services_of(request.app).sessions


async def get_recovery_policy(request: Request) -> RecoveryPolicy:
    return services_of(request.app).recovery


async def get_recovery_limiter(request: Request) -> RequestLimiter:
    return services_of(request.app).limiter


async def get_client_address(request: Request) -> str:
    """The peer the ASGI server reports (behind a proxy: uvicorn's
    --proxy-headers with FORWARDED_ALLOW_IPS naming it), never a header as sent."""
    return request.client.host if request.client else "unknown"


async def get_database_ping(request: Request) -> Callable[[], Awaitable[None]]:
    return partial(ping, services_of(request.app).engine)


UoWDep = Annotated[UserUnitOfWork, Depends(get_uow)]
ReaderDep = Annotated[UserReader, Depends(get_reader)]
RefreshGrantsDep = Annotated[RefreshGrants, Depends(get_refresh_grants)]
HasherDep = Annotated[PasswordHasher, Depends(get_hasher)]
TokensDep = Annotated[TokenIssuer, Depends(get_tokens)]
ThrottleDep = Annotated[LoginThrottle, Depends(get_throttle)]
ClockDep = Annotated[Clock, Depends(get_clock)]
SessionPolicyDep = Annotated[SessionPolicy, Depends(get_session_policy)]
RecoveryPolicyDep = Annotated[RecoveryPolicy, Depends(get_recovery_policy)]
RecoveryLimiterDep = Annotated[RequestLimiter, Depends(get_recovery_limiter)]
ClientAddress = Annotated[str, Depends(get_client_address)]
BearerToken = Annotated[str | None, Depends(oauth2_scheme)]
# Raises DatabaseUnavailable (503) unless the database answers.
DatabasePing = Annotated[Callable[[], Awaitable[None]], Depends(get_database_ping)]


async def get_caller(
    token: BearerToken, users: ReaderDep, tokens: TokensDep, clock: ClockDep
) -> Caller:
    return await ResolveCurrentUser(users, tokens, clock).execute(token)


CurrentCaller = Annotated[Caller, Depends(get_caller)]


async def get_current_user(caller: CurrentCaller) -> UserDTO:
    return caller.user


CurrentUser = Annotated[UserDTO, Depends(get_current_user)]


async def build_register_user(
    uow: UoWDep, hasher: HasherDep, clock: ClockDep, policy: RecoveryPolicyDep
) -> RegisterUser:
    return RegisterUser(uow, hasher, clock, policy)


async def build_authenticate_user(
    uow: UoWDep,
    hasher: HasherDep,
    throttle: ThrottleDep,
    tokens: TokensDep,
    clock: ClockDep,
    policy: SessionPolicyDep,
    recovery: RecoveryPolicyDep,
) -> AuthenticateUser:
    return AuthenticateUser(
        uow,
        hasher,
        throttle,
        tokens,
        clock,
        policy,
        require_verified_email=recovery.require_verified_email,
    )


async def build_refresh_session(
    grants: RefreshGrantsDep, tokens: TokensDep, clock: ClockDep, policy: SessionPolicyDep
) -> RefreshSession:
    return RefreshSession(grants, tokens, clock, policy)


async def build_revoke_token(uow: UoWDep, tokens: TokensDep, clock: ClockDep) -> RevokeToken:
    return RevokeToken(uow, tokens, clock)


async def build_logout(uow: UoWDep, clock: ClockDep) -> Logout:
    return Logout(uow, clock)


async def build_logout_all(uow: UoWDep, clock: ClockDep) -> LogoutAll:
    return LogoutAll(uow, clock)


async def build_list_sessions(uow: UoWDep, clock: ClockDep) -> ListSessions:
    return ListSessions(uow, clock)


async def build_end_session(uow: UoWDep, clock: ClockDep) -> EndSession:
    return EndSession(uow, clock)


async def build_request_account_mail(
    uow: UoWDep, limiter: RecoveryLimiterDep, clock: ClockDep
) -> RequestAccountMail:
    return RequestAccountMail(uow, limiter, clock)


async def build_reset_password(
    uow: UoWDep,
    hasher: HasherDep,
    throttle: ThrottleDep,
    limiter: RecoveryLimiterDep,
    clock: ClockDep,
) -> ResetPassword:
    return ResetPassword(uow, hasher, throttle, limiter, clock)


async def build_verify_email(
    uow: UoWDep, limiter: RecoveryLimiterDep, clock: ClockDep
) -> VerifyEmail:
    return VerifyEmail(uow, limiter, clock)


async def build_admin_end_sessions(uow: UoWDep, clock: ClockDep) -> AdminEndSessions:
    return AdminEndSessions(uow, clock)


async def build_get_user(uow: UoWDep) -> GetUser:
    return GetUser(uow)


async def build_list_users(uow: UoWDep) -> ListUsers:
    return ListUsers(uow)


async def build_update_profile(
    uow: UoWDep, clock: ClockDep, policy: RecoveryPolicyDep
) -> UpdateProfile:
    return UpdateProfile(uow, clock, policy)


async def build_change_password(
    uow: UoWDep, hasher: HasherDep, throttle: ThrottleDep, clock: ClockDep
) -> ChangePassword:
    return ChangePassword(uow, hasher, throttle, clock)


async def build_admin_update_user(
    uow: UoWDep, clock: ClockDep, policy: RecoveryPolicyDep
) -> AdminUpdateUser:
    return AdminUpdateUser(uow, clock, policy)


async def build_delete_user(uow: UoWDep) -> DeleteUser:
    return DeleteUser(uow)


class TokenGrants:
    """The token endpoint's two grants, each built only when its request asks
    for it. As two dependencies of the route, both use cases and all their
    pieces were resolved for every request: a tenth of a refresh's time
    (make bench, A/B). Built from the services, as the `GET /users/me` fast
    path builds its use case, so overrides of the pieces do not reach them."""

    def __init__(self, services: Services) -> None:
        self._services = services

    async def password(self) -> AuthenticateUser:
        s = self._services
        return await build_authenticate_user(
            SqlUserUnitOfWork(s.sessionmaker),
            s.hasher,
            s.throttle,
            s.tokens,
            s.clock,
            s.sessions,
            s.recovery,
        )

    async def refresh(self) -> RefreshSession:
        s = self._services
        return await build_refresh_session(s.refresh_grants, s.tokens, s.clock, s.sessions)


async def get_token_grants(request: Request) -> TokenGrants:
    return TokenGrants(services_of(request.app))


RegisterUserCase = Annotated[RegisterUser, Depends(build_register_user)]
GetUserCase = Annotated[GetUser, Depends(build_get_user)]
ListUsersCase = Annotated[ListUsers, Depends(build_list_users)]
UpdateProfileCase = Annotated[UpdateProfile, Depends(build_update_profile)]
ChangePasswordCase = Annotated[ChangePassword, Depends(build_change_password)]
AdminUpdateUserCase = Annotated[AdminUpdateUser, Depends(build_admin_update_user)]
DeleteUserCase = Annotated[DeleteUser, Depends(build_delete_user)]
TokenGrantsDep = Annotated[TokenGrants, Depends(get_token_grants)]
RevokeTokenCase = Annotated[RevokeToken, Depends(build_revoke_token)]
LogoutCase = Annotated[Logout, Depends(build_logout)]
LogoutAllCase = Annotated[LogoutAll, Depends(build_logout_all)]
ListSessionsCase = Annotated[ListSessions, Depends(build_list_sessions)]
EndSessionCase = Annotated[EndSession, Depends(build_end_session)]
AdminEndSessionsCase = Annotated[AdminEndSessions, Depends(build_admin_end_sessions)]
RequestAccountMailCase = Annotated[RequestAccountMail, Depends(build_request_account_mail)]
ResetPasswordCase = Annotated[ResetPassword, Depends(build_reset_password)]
VerifyEmailCase = Annotated[VerifyEmail, Depends(build_verify_email)]
