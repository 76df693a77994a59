"""RowsBySession sources for BatchedUserReader, the hot path of every
authenticated request: each reads sessions and their users in one query,
asyncpg directly on PostgreSQL, the sqlite3 module on an SQLite file,
SQLAlchemy anywhere else."""

import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.infra.db.engine import (
    DatabaseUnavailable,
    connection_trouble,
    open_asyncpg_pool,
    read_only,
)
from app.infra.db.mapping import SessionRecord, SessionTuple, UserRecord, UserTuple
from app.infra.db.models import sessions_table, users_table

Rows = Mapping[uuid.UUID, tuple[UserRecord, SessionRecord]]
# Fetches the sessions of the given ids with their users (missing ids are
# simply absent).
RowsBySession = Callable[[list[uuid.UUID]], Awaitable[Rows]]


_USER = len(UserTuple._fields)
# The user's columns, then the session's, by position.
_COLUMNS = ", ".join(
    [f"u.{name}" for name in UserTuple._fields] + [f"s.{name}" for name in SessionTuple._fields]
)
_FROM = "FROM sessions s JOIN users u ON u.id = s.user_id"
_BY_IDS_SQL = f"SELECT {_COLUMNS} {_FROM} WHERE s.id = ANY($1::uuid[])"


def _split(values: tuple[Any, ...]) -> tuple[uuid.UUID, tuple[UserRecord, SessionRecord]]:
    session = SessionTuple(*values[_USER:])
    return session.id, (UserTuple(*values[:_USER]), session)


class AsyncpgRowsBySession:
    """One prepared `... WHERE s.id = ANY($1)` on a small asyncpg pool of its
    own (`open_asyncpg_pool`): its connections only ever run this SELECT."""

    def __init__(self, pool: "asyncpg.Pool[Any]") -> None:
        self._pool = pool

    @classmethod
    async def open(cls, settings: Settings, connections: int) -> "AsyncpgRowsBySession":
        return cls(await open_asyncpg_pool(settings, connections))

    async def __call__(self, ids: list[uuid.UUID]) -> Rows:
        try:
            try:
                return await self._fetch(ids)
            except TimeoutError:
                raise  # the server did not answer in time: a retry would double the wait
            except Exception as exc:
                if connection_trouble(exc) is None:
                    raise
            # A pooled connection died (say the server restarted); the pool
            # replaces it, and a read is safe to repeat.
            return await self._fetch(ids)
        except Exception as exc:
            if (cause := connection_trouble(exc)) is None:
                raise
            raise DatabaseUnavailable(type(cause).__name__) from exc

    async def _fetch(self, ids: list[uuid.UUID]) -> Rows:
        async with self._pool.acquire() as connection:
            records = await connection.fetch(_BY_IDS_SQL, ids)
        return dict(_split(tuple(record.values())) for record in records)

    async def close(self) -> None:
        await self._pool.close()


class SqliteRowsBySession:
    """Reads with the standard sqlite3 module, on the event loop itself: in WAL
    mode readers never wait for writers, and a read by primary key takes a few
    microseconds, less than handing it to aiosqlite's thread and back. Values
    are decoded as SQLAlchemy stores them (ids as 32 hex digits, times as
    naive UTC text)."""

    BUSY_TIMEOUT_MS = 100  # the rare wait (WAL recovery) must not stall the loop

    def __init__(self, path: str) -> None:
        self._path = path
        self._connection: sqlite3.Connection | None = None

    async def __call__(self, ids: list[uuid.UUID]) -> Rows:
        marks = ", ".join("?" * len(ids))
        sql = f"SELECT {_COLUMNS} {_FROM} WHERE s.id IN ({marks})"
        try:
            rows = self._connect().execute(sql, [i.hex for i in ids]).fetchall()
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(str(exc)) from exc
        return dict(_split(_decoded(row)) for row in rows)

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            uri = f"file:{self._path}?mode=ro"
            connection = sqlite3.connect(uri, uri=True, isolation_level=None)
            connection.execute(f"PRAGMA busy_timeout={self.BUSY_TIMEOUT_MS}")
            self._connection = connection
        return self._connection

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _decoded(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row of _COLUMNS as sqlite3 returns it, with ids and times decoded."""
    user_id, *user, user_created, user_updated = row[:_USER]
    session_id, owner_id, created, last_used, expires, ended, user_agent = row[_USER:]
    return (
        uuid.UUID(hex=user_id),
        *user,
        datetime.fromisoformat(user_created),
        datetime.fromisoformat(user_updated),
        uuid.UUID(hex=session_id),
        uuid.UUID(hex=owner_id),
        datetime.fromisoformat(created),
        datetime.fromisoformat(last_used),
        datetime.fromisoformat(expires),
        datetime.fromisoformat(ended) if ended else None,
        user_agent,
    )


class SqlRowsBySession:
    """`SELECT ... WHERE s.id IN (...)` through SQLAlchemy: no write lock on SQLite."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = read_only(engine)

    async def __call__(self, ids: list[uuid.UUID]) -> Rows:
        try:
            return await self._fetch(ids)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            return await self._fetch(ids)  # the pool was refreshed; a read can be repeated

    async def _fetch(self, ids: list[uuid.UUID]) -> Rows:
        query = (
            select(
                *(users_table.c[name] for name in UserTuple._fields),
                *(sessions_table.c[name] for name in SessionTuple._fields),
            )
            .join_from(sessions_table, users_table, sessions_table.c.user_id == users_table.c.id)
            .where(sessions_table.c.id.in_(ids))
        )
        async with self._engine.connect() as connection:
            result = await connection.execute(query)
            return dict(_split(tuple(row)) for row in result)
