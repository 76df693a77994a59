from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str = field(repr=False)
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 (RFC 6750 token type, not a secret)


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What the core needs from a verified access token."""

    subject: str
    token_version: int


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str = field(repr=False)
