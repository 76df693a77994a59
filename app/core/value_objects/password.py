from dataclasses import dataclass, field

from app.core.exceptions import WeakPassword
from app.core.value_objects.common_passwords import COMMON_PASSWORDS
from app.core.value_objects.email import Email

MIN_PASSWORD_LENGTH = 8
# bcrypt reads only the first 72 bytes: refuse longer rather than truncate silently.
MAX_PASSWORD_BYTES = 72


@dataclass(frozen=True, slots=True)
class Password:
    """A new plain password that meets the policy. Lives only as long as a request."""

    value: str = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.value) < MIN_PASSWORD_LENGTH:
            raise WeakPassword(f"Password must be at least {MIN_PASSWORD_LENGTH} characters")
        if not is_hashable_secret(self.value):
            raise WeakPassword("Password contains characters that cannot be used")
        if len(self.value.encode()) > MAX_PASSWORD_BYTES:
            raise WeakPassword(f"Password must be at most {MAX_PASSWORD_BYTES} bytes in UTF-8")
        if self.value.lower() in COMMON_PASSWORDS:
            raise WeakPassword("Password is too common")

    def ensure_not_email(self, email: Email) -> None:
        if self.value.strip().lower() == email.value:
            raise WeakPassword("Password must not be the email address")


def is_hashable_secret(value: str) -> bool:
    """bcrypt takes UTF-8 bytes without NUL: lone surrogates and NUL cannot be hashed."""
    return "\x00" not in value and not any("\ud800" <= c <= "\udfff" for c in value)


def fits_bcrypt(value: str) -> bool:
    return is_hashable_secret(value) and len(value.encode()) <= MAX_PASSWORD_BYTES
