from enum import StrEnum

from app.core.exceptions import InvalidRole


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"

    @classmethod
    def parse(cls, raw: str) -> "Role":
        try:
            return cls(raw)
        except ValueError:
            raise InvalidRole() from None
