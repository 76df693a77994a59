from typing import Protocol

from app.core.value_objects import HashedPassword, Password


class PasswordHasher(Protocol):
    """Slow on purpose. Raises HashingBusy when no capacity frees up in time."""

    async def hash(self, password: Password) -> HashedPassword: ...

    async def verify(self, candidate: str, hashed: HashedPassword) -> bool:
        """`candidate` is whatever the client typed: it is not held to the policy."""
        ...

    async def needs_rehash(self, hashed: HashedPassword) -> bool: ...

    async def verify_dummy(self, candidate: str) -> None:
        """Spends the time of one `verify`, so unknown accounts answer as slowly."""
        ...
