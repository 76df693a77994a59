from typing import Protocol


class LoginThrottle(Protocol):
    """Failed-login counters per normalised username, shared by every process."""

    async def retry_after(self, username: str) -> int | None:
        """Seconds until `username` may try again, or None when it is not locked."""
        ...

    async def record_failure(self, username: str) -> None: ...

    async def reset(self, username: str) -> None: ...
