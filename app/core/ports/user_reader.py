from typing import Protocol

from app.core.entities import User
from app.core.value_objects import ID


class UserReader(Protocol):
    """Reads a user outside any unit of work, for requests that change nothing.

    Every call sees what was committed no earlier than the call began: an
    implementation may share one query among concurrent callers, never reuse
    an earlier answer.
    """

    async def get_by_id(self, user_id: ID) -> User | None: ...
