from dataclasses import dataclass, field

from app.core.dtos.user import UserDTO
from app.core.value_objects import ID


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str = field(repr=False)
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 (RFC 6750 token type, not a secret)


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a login or a refresh answers: an access token and the refresh
    token that gets the next one."""

    access: AccessToken
    refresh_token: str = field(repr=False)
    refresh_expires_in: int


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What the core needs from a verified access token: its user (`sub`) and
    session (`sid`), already ids, since a token's claims are read once and
    remembered while its requests are many."""

    subject: ID
    token_version: int
    session_id: ID


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a bearer token speaks for, and through which session."""

    user: UserDTO
    session_id: ID


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str = field(repr=False)
