from dataclasses import dataclass, field

from app.core.exceptions import InvalidValue


@dataclass(frozen=True, slots=True)
class HashedPassword:
    """A password hash as the hasher produced it; never shown or logged."""

    value: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.value:
            raise InvalidValue("Password hash must not be empty")
