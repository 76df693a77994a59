from typing import Protocol

from app.core.entities import Session, User
from app.core.value_objects import ID


class UserReader(Protocol):
    """Reads a session and its user at once, outside any unit of work, for
    every authenticated request.

    Every call sees what was committed no earlier than the call began: an
    implementation may share one query among concurrent callers, never reuse
    an earlier answer.
    """

    async def get_with_session(self, session_id: ID) -> tuple[User, Session] | None:
        """The session and the user it belongs to; None when there is no such session."""
        ...
