from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from app.core.entities import RefreshToken, Session, User


@dataclass(frozen=True, slots=True)
class RefreshGrant:
    """A stored refresh token, its session and the session's user."""

    token: RefreshToken
    session: Session
    user: User


class HeldRefreshToken(Protocol):
    """A refresh token held by one transaction: whoever presents the same
    token meanwhile waits, then sees what this one wrote."""

    @property
    def grant(self) -> RefreshGrant | None:
        """The token with its session and user; None if no token has that digest."""
        ...

    async def rotate(self, new: RefreshToken, now: datetime) -> None:
        """Spends the held token (once more, if it is spent already), records
        `now` as its session's last use, and stores `new`."""
        ...

    async def end_session(self, now: datetime) -> None:
        """Ends the held token's session at `now`."""
        ...


class RefreshGrants(Protocol):
    """The refresh grant's own path to the database, apart from the unit of
    work: every refresh is one short transaction that reads one joined row
    and writes three, the hottest write the service has."""

    def hold(self, digest: str) -> AbstractAsyncContextManager[HeldRefreshToken]:
        """A transaction holding the token of `digest`: it commits when the
        block ends normally and rolls back when the block raises."""
        ...
