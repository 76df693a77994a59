import unicodedata
from dataclasses import dataclass

from app.core.exceptions import InvalidName

MAX_NAME_LENGTH = 100


@dataclass(frozen=True, slots=True)
class Name:
    value: str

    def __post_init__(self) -> None:
        v = self.value.strip()
        if not 1 <= len(v) <= MAX_NAME_LENGTH or any(_is_control(c) for c in v):
            raise InvalidName()
        object.__setattr__(self, "value", v)

    def __str__(self) -> str:
        return self.value


def _is_control(char: str) -> bool:
    # Control characters and lone surrogates; emoji joiners and the like stay allowed.
    return unicodedata.category(char) in ("Cc", "Cs")
