"""Every failure becomes an HTTP response here, in one table; routes never try/except."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from app.core.exceptions import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidToken,
    InvalidValue,
    NotFound,
    RetryLater,
    TooManyAttempts,
    Unauthenticated,
    Unavailable,
)
from app.infra.db.engine import DatabaseUnavailable

log = logging.getLogger(__name__)

TOKEN_URL = "/auth/token"  # noqa: S105 (a path)
DB_RETRY_AFTER_SECONDS = 5

STATUS: dict[type[DomainError], int] = {
    InvalidValue: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    TooManyAttempts: 429,
    Unavailable: 503,
    RetryLater: 503,
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


def oauth_error_from(exc: DomainError) -> OAuthError:
    if isinstance(exc, RetryLater):
        return OAuthError("temporarily_unavailable", str(exc), status_of(exc), exc.retry_after)
    return OAuthError("invalid_grant", str(exc))


def _headers(retry_after: int | None = None, **extra: str) -> dict[str, str]:
    headers = dict(extra)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return headers


def _error(
    request: Request, status_code: int, detail: Any, headers: dict[str, str] | None = None
) -> JSONResponse:
    """`{"detail"}`, or at the token endpoint the RFC 6749 shape, for any failure."""
    if request.url.path == TOKEN_URL:
        error = "temporarily_unavailable" if status_code in (429, 503) else "invalid_request"
        return _oauth_response(OAuthError(error, str(detail), status_code), headers)
    return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)


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
    if status_code == 401:
        challenge = 'Bearer error="invalid_token"' if isinstance(exc, InvalidToken) else "Bearer"
        headers["WWW-Authenticate"] = challenge
    if isinstance(exc, RetryLater):
        headers["Retry-After"] = str(exc.retry_after)
    return _error(request, status_code, str(exc), headers)


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
    return _error(request, 422, errors)


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return _error(request, exc.status_code, exc.detail, dict(exc.headers or {}))


async def on_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # One line, no traceback: an outage is the operator's news, not a bug.
    reason = str(exc) if isinstance(exc, DatabaseUnavailable) else type(exc).__name__
    log.warning("database unavailable: %s", reason)
    return _error(
        request, 503, "Database unavailable; try again later", _headers(DB_RETRY_AFTER_SECONDS)
    )


async def on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error(request, 500, "Internal server error")


# The database, not the request: unreachable, refusing or gone (classified
# once, in infra/db/engine.py), an exhausted pool, SQLite's locked or
# unopenable file. Other errors stay 500s, with their traceback in the log.
DATABASE_UNAVAILABLE = (DatabaseUnavailable, PoolTimeout, OperationalError)


async def handled_error_response(request: Request, exc: Exception) -> JSONResponse | None:
    """What the handlers below answer for `exc`, for code that runs outside
    FastAPI's routing; None for an unexpected error (a 500, logged)."""
    if isinstance(exc, DomainError):
        return await on_domain_error(request, exc)
    if isinstance(exc, DATABASE_UNAVAILABLE):
        return await on_database_unavailable(request, exc)
    return None


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, on_domain_error)
    app.add_exception_handler(OAuthError, on_oauth_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
    for unavailable in DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, on_database_unavailable)
    app.add_exception_handler(Exception, on_unexpected_error)
