"""Error bodies, and the OpenAPI `responses` every route declares with them.

Each route lists the failure statuses it can answer with `error_responses(...)`
(or `oauth_error_responses(...)` at the token endpoint), so the schema documents
every status the service returns, with its body and headers: the fuzz tests
(tests/fuzz) fail on any status, body or header the schema does not describe.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict

from app.infra.api.schemas.auth import OAuthErrorResponse


class ErrorResponse(BaseModel):
    detail: str


class ValidationErrorItem(BaseModel):
    """FastAPI's validation error without `input` or `ctx` (never echoed back)."""

    model_config = ConfigDict(extra="forbid")

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorResponse(BaseModel):
    detail: list[ValidationErrorItem]


DESCRIPTIONS: dict[int, str] = {
    400: "A value breaks a domain rule, or the body cannot be parsed",
    401: "Missing, malformed, expired or revoked bearer token, or an inactive or deleted user",
    403: "Not enough permissions",
    404: "User not found",
    409: "Conflicts with the current state",
    413: "Request body over the configured limit",
    422: "Request shape error: missing, unknown or mistyped field, body not JSON, malformed id",
    429: "Locked after repeated login failures; retry after `Retry-After` seconds",
    503: "Database unavailable; retry after `Retry-After` seconds",
}

# The 503 of routes that hash a password (register, log in, change password).
HASHING_503 = (
    "Database unavailable, or no password-hashing capacity within "
    "`HASH_QUEUE_TIMEOUT_SECONDS`; retry after `Retry-After` seconds"
)

_RETRY_AFTER: dict[str, Any] = {
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}
_WWW_AUTHENTICATE: dict[str, Any] = {
    "WWW-Authenticate": {
        "description": 'RFC 6750 challenge: `Bearer`, or `Bearer error="invalid_token"`',
        "required": True,
        "schema": {"type": "string", "pattern": "^Bearer"},
    }
}
NO_STORE_HEADERS: dict[str, Any] = {
    "Cache-Control": {"required": True, "schema": {"type": "string", "enum": ["no-store"]}},
    "Pragma": {"required": True, "schema": {"type": "string", "enum": ["no-cache"]}},
}
HEADERS: dict[int, dict[str, Any]] = {401: _WWW_AUTHENTICATE, 429: _RETRY_AFTER, 503: _RETRY_AFTER}


def _model(code: int) -> type[BaseModel]:
    return ValidationErrorResponse if code == 422 else ErrorResponse


def error_responses(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for `codes`, `{"detail": ...}` bodies (422: the
    validation list). `descriptions` overrides the default text: `d409="..."`."""
    return {
        code: {
            "model": _model(code),
            "description": descriptions.get(f"d{code}", DESCRIPTIONS[code]),
            **({"headers": HEADERS[code]} if code in HEADERS else {}),
        }
        for code in codes
    }


def oauth_error_responses(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the token endpoint: RFC 6749 §5.2 bodies, never cached."""
    return {
        code: {
            "model": OAuthErrorResponse,
            "description": descriptions.get(f"d{code}", DESCRIPTIONS[code]),
            "headers": HEADERS.get(code, {}) | NO_STORE_HEADERS,
        }
        for code in codes
    }
