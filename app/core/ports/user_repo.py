from typing import Protocol

from app.core.entities import User
from app.core.value_objects import ID, Email, HashedPassword
from app.core.value_objects.page_cursor import PageCursor


class UserRepo(Protocol):
    async def get_by_id(self, user_id: ID) -> User | None: ...

    async def get_for_update(self, user_id: ID) -> User | None:
        """Like get_by_id, and locks the row until the unit of work ends."""
        ...

    async def get_by_email(self, email: Email) -> User | None: ...

    async def add(self, user: User) -> None:
        """Raises EmailTaken when the email is already in use."""
        ...

    async def update(self, user: User) -> None:
        """Raises EmailTaken when the new email is already in use."""
        ...

    async def replace_hash(self, user_id: ID, old: HashedPassword, new: HashedPassword) -> None:
        """Swaps the hash only if it is still `old`, so a concurrent change wins."""
        ...

    async def delete(self, user_id: ID) -> None: ...

    async def lock_active_admins(self) -> list[ID]:
        """The active admins, their rows locked in id order until the unit of
        work ends. Every admin write takes these locks first, so two concurrent
        demotions cannot both see a second admin, and an admin demoted while
        its request was in flight is seen as demoted."""
        ...

    async def list_page(
        self, limit: int, after: PageCursor | None, email_prefix: str | None
    ) -> list[User]:
        """Users in ascending (created_at, id) order, strictly after `after`."""
        ...
