"""Every failure becomes an HTTP response here; routes never try/except.

`HANDLERS` is the one list of handlers: the app registers it, and code that
runs outside FastAPI's routing (the `GET /users/me` fast path) looks its
handler up in it (`handler_for`), so both answer alike. The token endpoint's
RFC 6749 shape is decided in one place too, `_respond`.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.responses import Response

from app.core.exceptions import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidToken,
    InvalidValue,
    NotFound,
    RetryLater,
    TooManyAttempts,
    TooManyRequests,
    Unauthenticated,
)
from app.infra.db.engine import DatabaseUnavailable

log = logging.getLogger(__name__)

TOKEN_URL = "/auth/token"  # noqa: S105 (a path)
REVOKE_URL = "/auth/revoke"
# Endpoints of RFC 6749 (and RFC 7009, which borrows its errors): their
# failures answer in RFC 6749 §5.2's shape.
_OAUTH_PATHS = frozenset({TOKEN_URL, REVOKE_URL})
DB_RETRY_AFTER_SECONDS = 5

STATUS: dict[type[DomainError], int] = {
    InvalidValue: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    TooManyAttempts: 429,
    TooManyRequests: 429,
    RetryLater: 503,  # Unavailable, HashingBusy
}


class OAuthError(Exception):
    """An RFC 6749 §5.2 error of the token endpoint."""

    def __init__(
        self, error: str, description: str, status_code: int = 400, retry_after: int | None = None
    ) -> None:
        super().__init__(description)
        self.error, self.description = error, description
        self.status_code, self.retry_after = status_code, retry_after


def status_of(exc: DomainError) -> int:
    return next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 400)


def _headers(retry_after: int | None = None, **extra: str) -> dict[str, str]:
    headers = dict(extra)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return headers


def _respond(
    request: Request,
    status_code: int,
    detail: Any,
    headers: dict[str, str] | None = None,
    *,
    refused_grant: bool = False,
) -> JSONResponse:
    """`{"detail"}`, or at the OAuth endpoints RFC 6749 §5.2's shape, for any
    failure: the one place that tells the two apart."""
    if request.url.path not in _OAUTH_PATHS:
        return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)
    if refused_grant:
        # Whatever the domain's category (wrong password, inactive user, ...).
        error, status_code, headers = "invalid_grant", 400, None
    elif status_code in (429, 503):
        error = "temporarily_unavailable"
    else:
        error = "invalid_request"
    return _oauth_response(OAuthError(error, str(detail), status_code), headers)


def _oauth_response(exc: OAuthError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": exc.error, "error_description": exc.description},
        status_code=exc.status_code,
        headers=_headers(exc.retry_after, **(headers or {}))
        | {"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


async def on_domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    status_code = status_of(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, RetryLater):
        headers["Retry-After"] = str(exc.retry_after)
    elif status_code == 401:
        challenge = 'Bearer error="invalid_token"' if isinstance(exc, InvalidToken) else "Bearer"
        headers["WWW-Authenticate"] = challenge
    refused = not isinstance(exc, RetryLater)
    return _respond(request, status_code, str(exc), headers, refused_grant=refused)


async def on_oauth_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OAuthError)
    return _oauth_response(exc)


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # FastAPI's shape without `input` or `ctx`: a password must never be echoed.
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return _respond(request, 422, errors)


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return _respond(request, exc.status_code, exc.detail, dict(exc.headers or {}))


async def on_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # One line, no traceback: an outage is the operator's news, not a bug.
    reason = str(exc) if isinstance(exc, DatabaseUnavailable) else type(exc).__name__
    log.warning("database unavailable: %s", reason)
    services = getattr(request.app.state, "services", None)
    if services is not None and services.metrics is not None:
        services.metrics.database_unavailable()
    return _respond(
        request, 503, "Database unavailable; try again later", _headers(DB_RETRY_AFTER_SECONDS)
    )


async def on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _respond(request, 500, "Internal server error")


# The database, not the request: unreachable, refusing or gone (classified
# once, in infra/db/engine.py), an exhausted pool, SQLite's locked or
# unopenable file. Other errors stay 500s, with their traceback in the log.
DATABASE_UNAVAILABLE = (DatabaseUnavailable, PoolTimeout, OperationalError)


Handler = Callable[[Request, Exception], Awaitable[Response]]

# Starlette picks the handler of the closest class in the exception's MRO.
HANDLERS: list[tuple[type[Exception], Handler]] = [
    (OAuthError, on_oauth_error),
    (DomainError, on_domain_error),
    (RequestValidationError, on_validation_error),
    (HTTPException, on_http_error),
    *((unavailable, on_database_unavailable) for unavailable in DATABASE_UNAVAILABLE),
]


def handler_for(exc: Exception) -> Handler | None:
    """The handler of HANDLERS that the app would run for `exc`; None for an
    unexpected error, to be raised to the outermost layer like a route's."""
    handlers = dict(HANDLERS)
    return next((handlers[cls] for cls in type(exc).__mro__ if cls in handlers), None)


def register_error_handlers(app: FastAPI) -> None:
    for exc_type, handler in HANDLERS:
        app.add_exception_handler(exc_type, handler)
    # Anything else is a bug: Starlette's outermost layer answers a logged 500
    # (and re-raises it for the server's log), for routes and the fast path alike.
    app.add_exception_handler(Exception, on_unexpected_error)
