import re
from dataclasses import dataclass

from app.core.exceptions import InvalidEmail

MAX_EMAIL_LENGTH = 254

# Syntax only (no deliverability look-up): a dot-atom local part and a
# hostname of letters, digits and hyphens with at least one dot.
_EMAIL = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
)


_EMAIL_CHARACTERS = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~.@-]*")


def normalise_email(raw: str) -> str:
    return raw.strip().lower()


def could_begin_an_email(prefix: str) -> bool:
    """False when the (normalised) prefix holds a character no valid email has."""
    return _EMAIL_CHARACTERS.fullmatch(prefix) is not None


@dataclass(frozen=True, slots=True)
class Email:
    value: str

    def __post_init__(self) -> None:
        v = normalise_email(self.value)
        local, _, _ = v.partition("@")
        if len(v) > MAX_EMAIL_LENGTH or len(local) > 64 or not _EMAIL.fullmatch(v):
            raise InvalidEmail()
        object.__setattr__(self, "value", v)  # normalise once

    def __str__(self) -> str:
        return self.value
