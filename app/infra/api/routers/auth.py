from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

from app.core.dtos import Credentials
from app.infra.api.dependencies import AuthenticateUserCase
from app.infra.api.errors import OAuthError
from app.infra.api.schemas.auth import TokenResponse
from app.infra.api.schemas.errors import HASHING_503, NO_STORE_HEADERS, oauth_error_responses

router = APIRouter(prefix="/auth", tags=["auth"])

FORM_TYPE = "application/x-www-form-urlencoded"
_FIELDS = ("grant_type", "username", "password", "scope", "client_id", "client_secret")
# Far above any real credential; keeps absurd input from reaching bcrypt or the database.
_MAX_FIELD_LENGTH = 4096

_FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["username", "password"],
    "properties": {
        "grant_type": {"type": "string", "enum": ["password"]},
        "username": {"type": "string", "description": "The account's email"},
        "password": {"type": "string", "format": "password"},
        "scope": {"type": "string", "description": "Ignored"},
        "client_id": {"type": "string", "description": "Ignored: clients are public"},
        "client_secret": {"type": "string", "description": "Ignored: clients are public"},
    },
    "examples": [
        {
            "grant_type": "password",
            "username": "ann@example.com",
            "password": "correct-horse-battery",
        }
    ],
}


@router.post(
    "/token",
    summary="OAuth2 password grant (RFC 6749 §4.3)",
    openapi_extra={
        "requestBody": {"required": True, "content": {FORM_TYPE: {"schema": _FORM_SCHEMA}}}
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
    request: Request, response: Response, usecase: AuthenticateUserCase
) -> TokenResponse:
    # Parsed by hand so that every failure, a missing field included, answers
    # in the RFC 6749 shape rather than FastAPI's 422.
    form = await _read_form(request)
    grant_type = _field(form, "grant_type")
    username, password = _field(form, "username"), _field(form, "password")
    if grant_type is not None and grant_type != "password":
        raise OAuthError("unsupported_grant_type", "Only the password grant is supported")
    if not username or not password:
        raise OAuthError("invalid_request", "username and password are required")
    # A refused grant is a domain error: errors.py answers it in RFC 6749's shape.
    token = await usecase.execute(Credentials(username, password))
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return TokenResponse(
        access_token=token.token, token_type=token.token_type, expires_in=token.expires_in
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
