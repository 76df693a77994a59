from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response, status
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

from app.core.dtos import Credentials, TokenPair
from app.core.exceptions import (
    EmailNotVerified,
    HashingBusy,
    InvalidCredentials,
    InvalidRefreshToken,
    RefreshTokenReused,
    TooManyAttempts,
)
from app.infra.api.dependencies import (
    CurrentCaller,
    LogoutAllCase,
    LogoutCase,
    RevokeTokenCase,
    TokenGrantsDep,
)
from app.infra.api.errors import OAuthError
from app.infra.api.schemas.auth import TokenResponse
from app.infra.api.schemas.errors import (
    HASHING_503,
    NO_STORE_HEADERS,
    error_responses,
    oauth_error_responses,
)
from app.infra.api.services import services_of
from app.infra.metrics import LoginOutcome, RefreshOutcome

router = APIRouter(prefix="/auth", tags=["auth"])
_O = TypeVar("_O", bound=str)

FORM_TYPE = "application/x-www-form-urlencoded"
# Far above any real credential or token; keeps absurd input from reaching
# bcrypt or the database.
_MAX_FIELD_LENGTH = 4096
_IGNORED: dict[str, Any] = {
    "scope": {"type": "string", "description": "Ignored"},
    "client_id": {"type": "string", "description": "Ignored: clients are public"},
    "client_secret": {"type": "string", "description": "Ignored: clients are public"},
}

_TOKEN_FORM: dict[str, Any] = {
    "type": "object",
    "description": (
        "`grant_type=password` (the default) with `username` and `password`, "
        "or `grant_type=refresh_token` with `refresh_token`"
    ),
    "properties": {
        "grant_type": {"type": "string", "enum": ["password", "refresh_token"]},
        "username": {"type": "string", "description": "The account's email"},
        "password": {"type": "string", "format": "password"},
        "refresh_token": {"type": "string", "description": "The last refresh token received"},
        **_IGNORED,
    },
    "examples": [
        {
            "grant_type": "password",
            "username": "ann@example.com",
            "password": "correct-horse-battery",
        }
    ],
}
_REVOKE_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["token"],
    "properties": {
        "token": {"type": "string", "description": "A refresh token or an access token"},
        "token_type_hint": {"type": "string", "description": "Ignored: either kind is found"},
        **_IGNORED,
    },
}


@router.post(
    "/token",
    summary="OAuth2 password grant (RFC 6749 §4.3) and refresh (§6)",
    openapi_extra={
        "requestBody": {"required": True, "content": {FORM_TYPE: {"schema": _TOKEN_FORM}}}
    },
    # Every failure, FastAPI's own included, answers in the RFC 6749 §5.2 shape.
    responses={
        200: {"headers": NO_STORE_HEADERS},
        **oauth_error_responses(
            400,
            413,
            429,
            503,
            d400="RFC 6749 §5.2: invalid_request, invalid_grant or unsupported_grant_type",
            d503=HASHING_503,
        ),
    },
)
async def issue_token(
    request: Request,
    response: Response,
    grants: TokenGrantsDep,
) -> TokenResponse:
    # Parsed by hand so that every failure, a missing field included, answers
    # in the RFC 6749 shape rather than FastAPI's 422.
    form = await _read_form(request)
    grant_type = _field(form, "grant_type") or "password"
    metrics = services_of(request.app).metrics
    # A refused grant is a domain error: errors.py answers it in RFC 6749's shape.
    if grant_type == "password":
        username, password = _field(form, "username"), _field(form, "password")
        if not username or not password:
            raise OAuthError("invalid_request", "username and password are required")
        user_agent = request.headers.get("user-agent")
        login = await grants.password()
        with _counted(metrics.login if metrics else None, _login_outcome):
            pair = await login.execute(Credentials(username, password), user_agent)
    elif grant_type == "refresh_token":
        refresh_token = _field(form, "refresh_token")
        if not refresh_token:
            raise OAuthError("invalid_request", "refresh_token is required")
        refresh = await grants.refresh()
        with _counted(metrics.refresh if metrics else None, _refresh_outcome):
            pair = await refresh.execute(refresh_token)
    else:
        raise OAuthError(
            "unsupported_grant_type", "Only the password and refresh_token grants are supported"
        )
    _no_store(response)
    return _token_response(pair)


@router.post(
    "/revoke",
    summary="Revoke a refresh or access token (RFC 7009)",
    openapi_extra={
        "requestBody": {"required": True, "content": {FORM_TYPE: {"schema": _REVOKE_FORM}}}
    },
    responses={
        200: {
            "description": "Revoked, or was not a valid token: the answer is the same",
            "headers": NO_STORE_HEADERS,
        },
        **oauth_error_responses(400, 413, 503, d400="RFC 6749 §5.2: invalid_request"),
    },
    response_class=Response,
)
async def revoke_token(request: Request, usecase: RevokeTokenCase) -> Response:
    form = await _read_form(request)
    token = _field(form, "token")
    if not token:
        raise OAuthError("invalid_request", "token is required")
    await usecase.execute(token)
    response = Response(status_code=status.HTTP_200_OK)
    _no_store(response)
    return response


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End this session: its access and refresh tokens stop at once",
    responses=error_responses(401, 503),
)
async def logout(caller: CurrentCaller, usecase: LogoutCase) -> None:
    await usecase.execute(caller)


@router.post(
    "/logout/all",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End every session of the caller",
    responses=error_responses(401, 503),
)
async def logout_all(caller: CurrentCaller, usecase: LogoutAllCase) -> None:
    await usecase.execute(caller)


@contextmanager
def _counted(
    count: Callable[[_O], None] | None, outcome: Callable[[Exception | None], _O]
) -> Iterator[None]:
    """Counts a grant's outcome when metrics are on."""
    try:
        yield
    except Exception as exc:
        if count:
            count(outcome(exc))
        raise
    if count:
        count(outcome(None))


# The outcome of a refused grant: the first class listed that its exception is.
_LOGIN_OUTCOMES: dict[type[Exception], LoginOutcome] = {
    EmailNotVerified: "unverified",
    InvalidCredentials: "invalid",
    TooManyAttempts: "locked",
    HashingBusy: "shed",
}
_REFRESH_OUTCOMES: dict[type[Exception], RefreshOutcome] = {
    RefreshTokenReused: "reused",
    InvalidRefreshToken: "invalid",
}


def _login_outcome(exc: Exception | None) -> LoginOutcome:
    if exc is None:
        return "success"
    return next((o for cls, o in _LOGIN_OUTCOMES.items() if isinstance(exc, cls)), "error")


def _refresh_outcome(exc: Exception | None) -> RefreshOutcome:
    if exc is None:
        return "success"
    return next((o for cls, o in _REFRESH_OUTCOMES.items() if isinstance(exc, cls)), "error")


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


def _token_response(pair: TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access.token,
        token_type=pair.access.token_type,
        expires_in=pair.access.expires_in,
        refresh_token=pair.refresh_token,
        refresh_token_expires_in=pair.refresh_expires_in,
    )


async def _read_form(request: Request) -> FormData:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        raise OAuthError("invalid_request", f"The body must be {FORM_TYPE}")
    try:
        return await request.form()
    except HTTPException:
        raise  # 413 from the body limit
    except Exception:  # malformed form bodies come in many exception types
        raise OAuthError("invalid_request", "The body is not a valid form") from None


def _field(form: FormData, name: str) -> str | None:
    values = form.getlist(name)
    if len(values) > 1:  # RFC 6749 §3.1: parameters MUST NOT be repeated
        raise OAuthError("invalid_request", f"{name} is repeated")
    value = values[0] if values else None
    if value is not None and not isinstance(value, str):
        raise OAuthError("invalid_request", f"{name} must be text")
    if value is not None and len(value) > _MAX_FIELD_LENGTH:
        raise OAuthError("invalid_request", f"{name} is too long")
    return value or None  # RFC 6749 §3.1: an empty parameter counts as omitted
