from datetime import datetime, timedelta
from typing import Protocol

from app.core.dtos import EmailMessage
from app.core.entities import OneTimeToken, TokenPurpose
from app.core.value_objects import ID, Email


class OneTimeTokenRepo(Protocol):
    """Reset and verification tokens by digest, inside a unit of work."""

    async def add(self, token: OneTimeToken) -> None: ...

    async def get(self, digest: str, purpose: TokenPurpose) -> OneTimeToken | None: ...

    async def use(self, digest: str, now: datetime) -> bool:
        """Marks the token used, only if it is neither used nor voided (atomic:
        of concurrent uses one succeeds); False otherwise."""
        ...

    async def void_all(self, user_id: ID, purpose: TokenPurpose | None, now: datetime) -> None:
        """Voids the user's unused tokens (of one purpose, or all)."""
        ...


class Outbox(Protocol):
    """Mail to send, written in the same unit of work as the change that
    causes it; a dispatcher sends it after the commit."""

    async def add(self, message: EmailMessage, now: datetime) -> None: ...


class MailRequests(Protocol):
    """Requests for a recovery mail (forgot password, verify email), kept as
    they came: whether the address has an account is decided later, by the
    dispatcher, so the request reveals nothing, not even in its timing."""

    async def add(self, purpose: TokenPurpose, email: Email, now: datetime) -> None: ...

    async def take(self) -> tuple[TokenPurpose, Email] | None:
        """Removes the oldest request and returns it; None when there is none.
        Concurrent units of work never take the same one."""
        ...

    async def claim_cooldown(self, email: Email, now: datetime, cooldown: timedelta) -> bool:
        """True (and the address's cooldown starts at `now`) unless a recovery
        mail went to this address less than `cooldown` ago."""
        ...


class RequestLimiter(Protocol):
    """Counts requests per key (a client address) in fixed windows, in every
    process alike."""

    async def hit(self, key: str) -> int | None:
        """Counts one request. None: within the limit; else the whole seconds
        until the window ends (at least 1), and the request must be refused."""
        ...
