from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.entities import User
from app.core.exceptions import EmailTaken
from app.core.value_objects import ID, Email, HashedPassword, Name, Role
from app.core.value_objects.page_cursor import PageCursor
from app.infra.db.models import UserRow

_T = UserRow.__table__.c  # type: ignore[attr-defined]


class SqlUserRepo:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get_by_id(self, user_id: ID) -> User | None:
        row = await self._session.get(UserRow, user_id.value)
        return _to_entity(row) if row else None

    async def get_for_update(self, user_id: ID) -> User | None:
        row = await self._session.scalar(
            select(UserRow).where(_T.id == user_id.value).with_for_update()
        )
        return _to_entity(row) if row else None

    async def get_by_email(self, email: Email) -> User | None:
        row = await self._session.scalar(select(UserRow).where(_T.email == email.value))
        return _to_entity(row) if row else None

    async def add(self, user: User) -> None:
        self._session.add(_to_row(user))
        with _email_taken_on_conflict():
            await self._session.flush()

    async def update(self, user: User) -> None:
        values = _to_row(user).model_dump(exclude={"id", "created_at"})
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

    async def count_active_admins(self) -> int:
        locked = (
            select(_T.id)
            .where(_T.role == Role.ADMIN.value, _T.is_active.is_(True))
            .order_by(_T.id)  # one lock order across transactions
            .with_for_update()
            .subquery()
        )
        return await self._session.scalar(select(func.count()).select_from(locked)) or 0

    async def list_page(
        self, limit: int, after: PageCursor | None, email_prefix: str | None
    ) -> list[User]:
        query = select(UserRow).order_by(_T.created_at, _T.id).limit(limit)
        if after is not None:
            since = _utc(after.created_at)
            query = query.where(
                or_(_T.created_at > since, and_(_T.created_at == since, _T.id > after.id.value))
            )
        if email_prefix:
            query = query.where(_T.email.like(_escape_like(email_prefix) + "%", escape="\\"))
        rows = await self._session.scalars(query)
        return [_to_entity(row) for row in rows]


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


def _utc(moment: datetime) -> datetime:
    # SQLite stores wall-clock time without an offset: store UTC, read back as UTC.
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _to_entity(row: UserRow) -> User:
    return User(
        id=ID(row.id),
        email=Email(row.email),
        name=Name(row.name),
        hashed_password=HashedPassword(row.hashed_password),
        role=Role(row.role),
        is_active=row.is_active,
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
        token_version=row.token_version,
    )


def _to_row(user: User) -> UserRow:
    return UserRow(
        id=user.id.value,
        email=user.email.value,
        name=user.name.value,
        hashed_password=user.hashed_password.value,
        role=user.role.value,
        is_active=user.is_active,
        token_version=user.token_version,
        created_at=_utc(user.created_at),
        updated_at=_utc(user.updated_at),
    )
