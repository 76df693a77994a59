import re
from dataclasses import dataclass

from app.core.exceptions import InvalidName

MAX_NAME_LENGTH = 100
# Control characters (Unicode Cc) and lone surrogates (Cs); emoji joiners and
# the like stay allowed.
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Name:
    value: str

    def __post_init__(self) -> None:
        v = self.value.strip()
        if not 1 <= len(v) <= MAX_NAME_LENGTH or _FORBIDDEN.search(v):
            raise InvalidName()
        object.__setattr__(self, "value", v)

    def __str__(self) -> str:
        return self.value
