from datetime import datetime
from typing import Protocol

from app.core.entities import RefreshToken, Session
from app.core.value_objects import ID


class SessionRepo(Protocol):
    """Sessions, inside a unit of work. "Live" is `Session.is_live`: not
    ended and before its absolute limit."""

    async def add(self, session: Session) -> None: ...

    async def get(self, session_id: ID) -> Session | None: ...

    async def list_live(self, user_id: ID, now: datetime) -> list[Session]:
        """The user's live sessions, newest first."""
        ...

    async def end(self, session_id: ID, now: datetime) -> None:
        """Ends the session (if it has not ended already)."""
        ...

    async def end_all(self, user_id: ID, now: datetime) -> None:
        """Ends every session of the user."""
        ...

    async def end_beyond(self, user_id: ID, keep: int, now: datetime) -> None:
        """Ends the user's oldest live sessions beyond the newest `keep`."""
        ...


class RefreshTokenRepo(Protocol):
    """Refresh tokens by digest, inside a unit of work: the login's new one,
    the one a revocation looks up. Spending them is the refresh grant's
    (RefreshGrants)."""

    async def add(self, token: RefreshToken) -> None: ...

    async def get(self, digest: str) -> RefreshToken | None: ...
