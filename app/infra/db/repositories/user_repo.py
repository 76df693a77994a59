from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import delete, func, literal, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.entities import User
from app.core.exceptions import EmailTaken
from app.core.value_objects import ID, Email, HashedPassword, Role
from app.core.value_objects.page_cursor import PageCursor
from app.infra.db.mapping import to_entity, to_row, utc
from app.infra.db.models import UserRow, users_table

_T = users_table.c


class SqlUserRepo:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get_by_id(self, user_id: ID) -> User | None:
        row = await self._session.get(UserRow, user_id.value)
        return to_entity(row) if row else None

    async def get_for_update(self, user_id: ID) -> User | None:
        row = await self._session.scalar(
            select(UserRow).where(_T.id == user_id.value).with_for_update()
        )
        return to_entity(row) if row else None

    async def get_by_email(self, email: Email) -> User | None:
        row = await self._session.scalar(select(UserRow).where(_T.email == email.value))
        return to_entity(row) if row else None

    async def add(self, user: User) -> None:
        self._session.add(to_row(user))
        with _email_taken_on_conflict():
            await self._session.flush()

    async def update(self, user: User) -> None:
        values = to_row(user).model_dump(exclude={"id", "created_at"})
        with _email_taken_on_conflict():
            await self._session.execute(
                update(UserRow).where(_T.id == user.id.value).values(values)
            )

    async def replace_hash(self, user_id: ID, old: HashedPassword, new: HashedPassword) -> None:
        await self._session.execute(
            update(UserRow)
            .where(_T.id == user_id.value, _T.hashed_password == old.value)
            .values(hashed_password=new.value)
        )

    async def delete(self, user_id: ID) -> None:
        await self._session.execute(delete(UserRow).where(_T.id == user_id.value))

    async def lock_active_admins(self) -> list[ID]:
        # On PostgreSQL a row changed by a transaction we waited for is checked
        # again against the WHERE clause: a just-demoted admin is left out.
        ids = await self._session.scalars(
            select(_T.id)
            .where(_T.role == Role.ADMIN.value, _T.is_active.is_(True))
            .order_by(_T.id)  # one lock order across transactions
            .with_for_update()
        )
        return [ID(user_id) for user_id in ids]

    async def list_page(
        self, limit: int, after: PageCursor | None, email_prefix: str | None
    ) -> list[User]:
        query = select(UserRow).order_by(_T.created_at, _T.id).limit(limit)
        if after is not None:
            # A row-value comparison is a range condition on ix_users_created_at_id
            # (`a > x OR (a = x AND b > y)` is only a filter). The values are bound
            # with the columns' types: SQLite compares the text SQLAlchemy stores
            # (naive UTC times, 32-hex ids), so they must be written the same way.
            since = literal(utc(after.created_at), _T.created_at.type)
            after_id = literal(after.id.value, _T.id.type)
            query = query.where(tuple_(_T.created_at, _T.id) > tuple_(since, after_id))
        if email_prefix:
            # lower(email), although emails are stored lower-cased: on PostgreSQL
            # the expression matches ix_users_email_pattern, which serves LIKE
            # prefixes whatever the database collation.
            pattern = _escape_like(email_prefix) + "%"
            query = query.where(func.lower(_T.email).like(pattern, escape="\\"))
        rows = await self._session.scalars(query)
        return [to_entity(row) for row in rows]


@contextmanager
def _email_taken_on_conflict() -> Iterator[None]:
    # The unique constraint, not a prior SELECT, settles concurrent claims on an email.
    try:
        yield
    except IntegrityError as exc:
        if "email" in str(exc.orig):
            raise EmailTaken() from exc
        raise


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
