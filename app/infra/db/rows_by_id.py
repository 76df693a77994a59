"""RowsById sources for BatchedUserReader, the hot path of every authenticated
request: asyncpg directly on PostgreSQL, the sqlite3 module on an SQLite file,
SQLAlchemy anywhere else."""

import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
from sqlalchemy import make_url, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.infra.db.engine import (
    DatabaseUnavailable,
    asyncpg_connect_args,
    connection_trouble,
    read_only,
)
from app.infra.db.mapping import UserRecord
from app.infra.db.models import users_table

# Fetches the rows of the given ids (missing ids are simply absent).
RowsById = Callable[[list[uuid.UUID]], Awaitable[Mapping[uuid.UUID, UserRecord]]]


class _Record(NamedTuple):
    id: uuid.UUID
    email: str
    name: str
    hashed_password: str
    role: str
    is_active: bool
    token_version: int
    created_at: Any
    updated_at: Any


_COLUMNS = ", ".join(_Record._fields)
_BY_IDS_SQL = f"SELECT {_COLUMNS} FROM users WHERE id = ANY($1::uuid[])"  # noqa: S608 (constant)


class AsyncpgRowsById:
    """One prepared `... WHERE id = ANY($1)` on a small asyncpg pool of its own.

    Connections only ever run this SELECT, so they are returned to the pool
    without asyncpg's reset query (a round trip per use).
    """

    def __init__(self, pool: "asyncpg.Pool[Any]") -> None:
        self._pool = pool

    @classmethod
    async def open(cls, settings: Settings, connections: int) -> "AsyncpgRowsById":
        url = make_url(settings.database_url).set(drivername="postgresql")
        pool = asyncpg.create_pool(
            url.render_as_string(hide_password=False),
            min_size=0,
            max_size=connections,
            reset=_keep_session,
            **asyncpg_connect_args(settings),
        )
        return cls(await pool)

    async def __call__(self, ids: list[uuid.UUID]) -> Mapping[uuid.UUID, UserRecord]:
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

    async def _fetch(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, UserRecord]:
        async with self._pool.acquire() as connection:
            records = await connection.fetch(_BY_IDS_SQL, ids)
        return {record[0]: _Record(*record.values()) for record in records}

    async def close(self) -> None:
        await self._pool.close()


async def _keep_session(_: asyncpg.Connection) -> None:
    pass


class SqliteRowsById:
    """Reads with the standard sqlite3 module, on the event loop itself: in WAL
    mode readers never wait for writers, and a read by primary key takes a few
    microseconds, less than handing it to aiosqlite's thread and back. Values
    are decoded as SQLAlchemy stores them (ids as 32 hex digits, times as
    naive UTC text)."""

    BUSY_TIMEOUT_MS = 100  # the rare wait (WAL recovery) must not stall the loop

    def __init__(self, path: str) -> None:
        self._path = path
        self._connection: sqlite3.Connection | None = None

    async def __call__(self, ids: list[uuid.UUID]) -> Mapping[uuid.UUID, UserRecord]:
        marks = ", ".join("?" * len(ids))
        sql = f"SELECT {_COLUMNS} FROM users WHERE id IN ({marks})"  # noqa: S608 (only ?s)
        try:
            rows = self._connect().execute(sql, [i.hex for i in ids]).fetchall()
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(str(exc)) from exc
        records = (
            _Record(uuid.UUID(hex=r[0]), *r[1:7], *map(datetime.fromisoformat, r[7:])) for r in rows
        )
        return {record.id: record for record in records}

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


class SqlRowsById:
    """`SELECT ... WHERE id IN (...)` through SQLAlchemy: no write lock on SQLite."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = read_only(engine)

    async def __call__(self, ids: list[uuid.UUID]) -> Mapping[uuid.UUID, UserRecord]:
        try:
            return await self._fetch(ids)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            return await self._fetch(ids)  # the pool was refreshed; a read can be repeated

    async def _fetch(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, UserRecord]:
        async with self._engine.connect() as connection:
            query = select(users_table).where(users_table.c.id.in_(ids))
            result = await connection.execute(query)
            return {row.id: row for row in result}
