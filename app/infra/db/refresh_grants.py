"""RefreshGrants: the refresh grant's transaction, asyncpg directly on
PostgreSQL, SQLAlchemy Core anywhere else (SQLite).

A refresh is the hottest write the service has, and through the unit of work
(an ORM session, statements built per call, a pooled connection pinged and
reset) most of its cost was SQLAlchemy's, not the database's (make bench:
277 refreshes/s through it, 1,500-1,600 now). Here it is one short
transaction: the token joined with its session and user, the token's row
locked (`FOR UPDATE OF`; on SQLite the write lock that `BEGIN IMMEDIATE`
takes), then either the rotation (the spend, the session's last use and the
new token: one statement on PostgreSQL, three through SQLAlchemy) or the
session's end.
"""

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.config import Settings
from app.core.entities import RefreshToken
from app.core.ports import RefreshGrant
from app.infra.db.engine import DatabaseUnavailable, connection_trouble, open_asyncpg_pool
from app.infra.db.mapping import (
    RefreshTokenTuple,
    SessionTuple,
    UserTuple,
    to_entity,
    to_refresh_token,
    to_session,
    utc,
)
from app.infra.db.models import refresh_tokens_table, sessions_table, users_table

_TOKEN_END = len(RefreshTokenTuple._fields)
_SESSION_END = _TOKEN_END + len(SessionTuple._fields)


def _held(grant: RefreshGrant | None) -> RefreshGrant:
    if grant is None:
        raise RuntimeError("no refresh token is held: there is nothing to write")
    return grant


def _grant(values: Iterable[Any]) -> RefreshGrant:
    """A row of the token's, the session's and the user's columns, in that order."""
    values = tuple(values)
    return RefreshGrant(
        token=to_refresh_token(RefreshTokenTuple(*values[:_TOKEN_END])),
        session=to_session(SessionTuple(*values[_TOKEN_END:_SESSION_END])),
        user=to_entity(UserTuple(*values[_SESSION_END:])),
    )


# --- PostgreSQL: asyncpg ------------------------------------------------------

_COLUMNS = ", ".join(
    [f"r.{name}" for name in RefreshTokenTuple._fields]
    + [f"s.{name}" for name in SessionTuple._fields]
    + [f"u.{name}" for name in UserTuple._fields]
)
_FROM = "refresh_tokens r JOIN sessions s ON s.id = r.session_id JOIN users u ON u.id = s.user_id"
# Column names from the NamedTuples; the digest is a parameter.
_FIND_SQL = f"SELECT {_COLUMNS} FROM {_FROM} WHERE r.token_hash = $1 FOR UPDATE OF r"  # noqa: S608
# The rotation in one round trip: the spend (once more if spent already: SET
# reads the row as it was), the session's last use and the new token.
_ROTATE_SQL = """
WITH spent AS (
    UPDATE refresh_tokens SET spent_at = coalesce(spent_at, $3), respent = spent_at IS NOT NULL
    WHERE token_hash = $1
), touched AS (
    UPDATE sessions SET last_used_at = $3 WHERE id = $2
)
INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at, respent)
VALUES ($4, $2, $5, $6, false)
"""
_END_SQL = "UPDATE sessions SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL"


class AsyncpgRefreshGrants:
    """Prepared statements on a small asyncpg pool of its own
    (`open_asyncpg_pool`): every use ends with its transaction closed."""

    def __init__(self, pool: "asyncpg.Pool[Any]") -> None:
        self._pool = pool

    @classmethod
    async def open(cls, settings: Settings, connections: int) -> "AsyncpgRefreshGrants":
        return cls(await open_asyncpg_pool(settings, connections))

    @asynccontextmanager
    async def hold(self, digest: str) -> AsyncIterator["_AsyncpgHeld"]:
        try:
            async with self._pool.acquire() as connection, connection.transaction():
                record = await connection.fetchrow(_FIND_SQL, digest)
                yield _AsyncpgHeld(connection, _grant(record.values()) if record else None)
        except Exception as exc:
            if (cause := connection_trouble(exc)) is None:
                raise
            raise DatabaseUnavailable(type(cause).__name__) from exc

    async def close(self) -> None:
        await self._pool.close()


class _AsyncpgHeld:
    def __init__(
        self, connection: "asyncpg.pool.PoolConnectionProxy[Any]", grant: RefreshGrant | None
    ) -> None:
        self._db, self._grant = connection, grant

    @property
    def grant(self) -> RefreshGrant | None:
        return self._grant

    async def rotate(self, new: RefreshToken, now: datetime) -> None:
        token = _held(self._grant).token
        await self._db.execute(
            _ROTATE_SQL,
            token.digest,
            token.session_id.value,
            utc(now),
            new.digest,
            utc(new.issued_at),
            utc(new.expires_at),
        )

    async def end_session(self, now: datetime) -> None:
        await self._db.execute(_END_SQL, _held(self._grant).session.id.value, utc(now))


# --- SQLite and the rest: SQLAlchemy Core --------------------------------------

_R, _S, _U = refresh_tokens_table.c, sessions_table.c, users_table.c
# Built once: a statement built per call costs more than running it.
_FIND = (
    select(
        *(_R[name] for name in RefreshTokenTuple._fields),
        *(_S[name] for name in SessionTuple._fields),
        *(_U[name] for name in UserTuple._fields),
    )
    .join_from(refresh_tokens_table, sessions_table, _S.id == _R.session_id)
    .join_from(sessions_table, users_table, _U.id == _S.user_id)
    .where(_R.token_hash == bindparam("digest"))
    .with_for_update(of=refresh_tokens_table)
)
_SPEND = (
    update(refresh_tokens_table)
    .where(_R.token_hash == bindparam("digest"))
    .values(spent_at=bindparam("now"))
)
_SPEND_AGAIN = (
    update(refresh_tokens_table).where(_R.token_hash == bindparam("digest")).values(respent=True)
)
_TOUCH = (
    update(sessions_table)
    .where(_S.id == bindparam("session_id"))
    .values(last_used_at=bindparam("now"))
)
_ADD = insert(refresh_tokens_table)
_END = (
    update(sessions_table)
    .where(_S.id == bindparam("session_id"), _S.ended_at.is_(None))
    .values(ended_at=bindparam("now"))
)


class SqlRefreshGrants:
    """The same transaction through SQLAlchemy Core: on SQLite its BEGIN
    IMMEDIATE (app/infra/db/engine.py) holds the write lock, so the token is
    held from the first read.

    SQLite has one writer at a time, and a transaction that finds the lock
    taken sleeps in SQLite's busy handler (up to 100 ms a turn): refreshes of
    this process wait their turn on an asyncio lock instead, woken the moment
    the one before commits.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._turn: AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if engine.dialect.name == "sqlite" else nullcontext()
        )

    @asynccontextmanager
    async def hold(self, digest: str) -> AsyncIterator["_SqlHeld"]:
        async with self._turn, self._engine.begin() as connection:
            row = (await connection.execute(_FIND, {"digest": digest})).one_or_none()
            yield _SqlHeld(connection, _grant(row) if row is not None else None)

    async def close(self) -> None:
        pass


class _SqlHeld:
    def __init__(self, connection: AsyncConnection, grant: RefreshGrant | None) -> None:
        self._db, self._grant = connection, grant

    @property
    def grant(self) -> RefreshGrant | None:
        return self._grant

    async def rotate(self, new: RefreshToken, now: datetime) -> None:
        token = _held(self._grant).token
        if token.spent_at is None:
            await self._db.execute(_SPEND, {"digest": token.digest, "now": utc(now)})
        else:
            await self._db.execute(_SPEND_AGAIN, {"digest": token.digest})
        await self._db.execute(_TOUCH, {"session_id": token.session_id.value, "now": utc(now)})
        await self._db.execute(
            _ADD,
            {
                "token_hash": new.digest,
                "session_id": new.session_id.value,
                "issued_at": utc(new.issued_at),
                "expires_at": utc(new.expires_at),
                "respent": False,
            },
        )

    async def end_session(self, now: datetime) -> None:
        session_id = _held(self._grant).session.id.value
        await self._db.execute(_END, {"session_id": session_id, "now": utc(now)})


async def open_refresh_grants(
    settings: Settings, engine: AsyncEngine, connections: int
) -> AsyncpgRefreshGrants | SqlRefreshGrants:
    """The process's RefreshGrants: on PostgreSQL with `connections` of its own."""
    if engine.dialect.name == "postgresql":
        return await AsyncpgRefreshGrants.open(settings, connections)
    return SqlRefreshGrants(engine)
