from app.core.dtos import UserDTO, UserPage
from app.core.exceptions import InvalidValue, NotEnoughPermissions
from app.core.ports import UserUnitOfWork
from app.core.value_objects.email import could_begin_an_email, normalise_email
from app.core.value_objects.page_cursor import PageCursor

MAX_PAGE_SIZE = 100


class ListUsers:
    """Admins page through users in ascending (created_at, id) order.

    Keyset pagination: the cursor names the last user seen, so pages stay
    stable while users are added and cost the same however deep they are.
    The email filter is a case-insensitive literal prefix.
    """

    def __init__(self, uow: UserUnitOfWork) -> None:
        self._uow = uow

    async def execute(
        self, actor: UserDTO, limit: int, cursor: str | None = None, email_prefix: str | None = None
    ) -> UserPage:
        if not actor.is_admin:
            raise NotEnoughPermissions()
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidValue(f"limit must be between 1 and {MAX_PAGE_SIZE}")
        after = PageCursor.decode(cursor) if cursor else None
        prefix = normalise_email(email_prefix) if email_prefix else None
        if prefix is not None and not could_begin_an_email(prefix):
            return UserPage(items=[], next_cursor=None)  # no stored email can match
        async with self._uow as uow:
            users = await uow.users.list_page(limit + 1, after, prefix)
        page, more = users[:limit], len(users) > limit
        next_cursor = PageCursor(page[-1].created_at, page[-1].id).encode() if more else None
        return UserPage(items=[UserDTO.from_entity(u) for u in page], next_cursor=next_cursor)
