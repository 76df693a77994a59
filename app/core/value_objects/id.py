import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class ID:
    value: uuid.UUID

    @classmethod
    def new(cls) -> "ID":
        return cls(uuid.uuid4())

    @classmethod
    def parse(cls, raw: str) -> "ID":
        """Raises ValueError for anything that is not a UUID."""
        return cls(uuid.UUID(raw))

    def __str__(self) -> str:
        return str(self.value)
