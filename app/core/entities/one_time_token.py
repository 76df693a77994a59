from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from app.core.entities.user import User
from app.core.value_objects import ID


class TokenPurpose(StrEnum):
    PASSWORD_RESET = "password_reset"  # noqa: S105 (a purpose, not a secret)
    EMAIL_VERIFICATION = "email_verification"


@dataclass(frozen=True, slots=True)
class RecoveryPolicy:
    """Links, lifetimes and limits of account mail, from the settings."""

    frontend_url: str  # links are {frontend_url}/reset-password#token=...
    reset_ttl: timedelta
    verification_ttl: timedelta
    cooldown: timedelta  # per address, between two recovery mails
    require_verified_email: bool = False

    def ttl(self, purpose: TokenPurpose) -> timedelta:
        return self.reset_ttl if purpose is TokenPurpose.PASSWORD_RESET else self.verification_ttl

    def link(self, purpose: TokenPurpose, token: str) -> str:
        page = "reset-password" if purpose is TokenPurpose.PASSWORD_RESET else "verify-email"
        # After `#`: the token never reaches a server log or a Referer.
        return f"{self.frontend_url.rstrip('/')}/{page}#token={token}"


@dataclass(eq=False, slots=True)
class OneTimeToken:
    """What is stored of a reset or verification token: its digest, for one
    purpose, one user and the address it was sent to. It works once, until it
    expires, unless a newer one of its purpose (or a password reset) voids it."""

    digest: str
    purpose: TokenPurpose
    user_id: ID
    email: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    voided_at: datetime | None = None

    @classmethod
    def issue(
        cls, digest: str, purpose: TokenPurpose, user: User, now: datetime, ttl: timedelta
    ) -> "OneTimeToken":
        return cls(digest, purpose, user.id, user.email.value, now, now + ttl)

    def is_usable_by(self, user: User | None, now: datetime) -> bool:
        """Unused, not voided, unexpired, and sent to the user's current address."""
        return (
            user is not None
            and user.is_active
            and user.id == self.user_id
            and user.email.value == self.email
            and self.used_at is None
            and self.voided_at is None
            and now < self.expires_at
        )
