from typing import Literal

from pydantic import BaseModel


class TokenResponse(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str
    refresh_token_expires_in: int


class OAuthErrorResponse(BaseModel):
    """RFC 6749 §5.2."""

    error: Literal[
        "invalid_request", "invalid_grant", "unsupported_grant_type", "temporarily_unavailable"
    ]
    error_description: str
