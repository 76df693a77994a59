from datetime import datetime

from sqlalchemy import ColumnElement, and_, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.entities import RefreshToken, Session
from app.core.value_objects import ID
from app.infra.db.mapping import to_refresh_token, to_session, utc
from app.infra.db.models import refresh_tokens_table, sessions_table

_S = sessions_table.c
_R = refresh_tokens_table.c


def _live(user_id: ID, now: datetime) -> ColumnElement[bool]:
    """`Session.is_live`, in SQL."""
    return and_(_S.user_id == user_id.value, _S.ended_at.is_(None), _S.expires_at > utc(now))


class SqlSessionRepo:
    def __init__(self, session: AsyncSession) -> None:
        self._db = session

    async def add(self, session: Session) -> None:
        await self._db.execute(
            insert(sessions_table).values(
                id=session.id.value,
                user_id=session.user_id.value,
                created_at=utc(session.created_at),
                last_used_at=utc(session.last_used_at),
                expires_at=utc(session.expires_at),
                ended_at=utc(session.ended_at) if session.ended_at else None,
                user_agent=session.user_agent,
            )
        )

    async def get(self, session_id: ID) -> Session | None:
        row = (
            await self._db.execute(select(sessions_table).where(_S.id == session_id.value))
        ).one_or_none()
        return to_session(row) if row else None

    async def list_live(self, user_id: ID, now: datetime) -> list[Session]:
        rows = await self._db.execute(
            select(sessions_table)
            .where(_live(user_id, now))
            .order_by(_S.created_at.desc(), _S.id.desc())
        )
        return [to_session(row) for row in rows]

    async def end(self, session_id: ID, now: datetime) -> None:
        await self._db.execute(
            update(sessions_table)
            .where(_S.id == session_id.value, _S.ended_at.is_(None))
            .values(ended_at=utc(now))
        )

    async def end_all(self, user_id: ID, now: datetime) -> None:
        await self._db.execute(
            update(sessions_table)
            .where(_S.user_id == user_id.value, _S.ended_at.is_(None))
            .values(ended_at=utc(now))
        )

    async def end_beyond(self, user_id: ID, keep: int, now: datetime) -> None:
        newest = (
            select(_S.id)
            .where(_live(user_id, now))
            .order_by(_S.created_at.desc(), _S.id.desc())
            .limit(keep)
        )
        await self._db.execute(
            update(sessions_table)
            .where(_live(user_id, now), _S.id.not_in(newest.scalar_subquery()))
            .values(ended_at=utc(now))
        )


class SqlRefreshTokenRepo:
    def __init__(self, session: AsyncSession) -> None:
        self._db = session

    async def add(self, token: RefreshToken) -> None:
        await self._db.execute(
            insert(refresh_tokens_table).values(
                token_hash=token.digest,
                session_id=token.session_id.value,
                issued_at=utc(token.issued_at),
                expires_at=utc(token.expires_at),
                spent_at=utc(token.spent_at) if token.spent_at else None,
                respent=token.respent,
            )
        )

    async def get(self, digest: str) -> RefreshToken | None:
        row = (
            await self._db.execute(select(refresh_tokens_table).where(_R.token_hash == digest))
        ).one_or_none()
        return to_refresh_token(row) if row else None
