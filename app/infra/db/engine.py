from typing import Any, cast

import asyncpg
from sqlalchemy import CursorResult, Result, event, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection, Dialect, ExceptionContext
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from app.config import Settings


class DatabaseUnavailable(Exception):
    """The database could not be reached, refused us, or is gone."""


# SQLSTATE classes that blame the database, not the statement: 08 connection
# exception, 28 invalid authorization (wrong password, unknown role), 3D the
# database does not exist (say it was dropped), 53 insufficient resources (too
# many connections), 57P shutting down, starting up, database dropped. Worth
# a 503 with Retry-After, never a 500: the pools reconnect once it is back.
UNAVAILABLE_SQLSTATES = ("08", "28", "3D", "53", "57P")


def connection_trouble(exc: BaseException | None) -> BaseException | None:
    """The driver's error in `exc`'s chain of causes when it says the
    database is unreachable, refuses us or is gone; None for anything else
    (a bad statement, a bug). Only for errors of a database call: there an
    OSError (refused, reset, timed out, unknown host) is the network's."""
    found: BaseException | None = None
    seen = 0
    while exc is not None and seen < 5:
        sqlstate = getattr(exc, "sqlstate", None)
        if isinstance(exc, asyncpg.InterfaceError | OSError):  # "connection is closed"
            found = exc
        elif isinstance(sqlstate, str) and sqlstate.startswith(UNAVAILABLE_SQLSTATES):
            found = exc  # SQLAlchemy's wrapper copies it: keep looking for the driver's
        exc, seen = exc.__cause__, seen + 1
    return found


def create_engine(settings: Settings) -> AsyncEngine:
    """One engine per process, with a bounded pool."""
    url = settings.database_url
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    engine = create_async_engine(
        url,
        pool_size=settings.DB_POOL_SIZE,
        max_overflow=settings.DB_MAX_OVERFLOW,
        pool_timeout=settings.DB_POOL_TIMEOUT_SECONDS,
        pool_pre_ping=settings.DB_POOL_PRE_PING,
        connect_args=asyncpg_connect_args(settings),
        # Errors and logs never show statement parameters (password hashes among them).
        hide_parameters=True,
    )
    event.listen(engine.sync_engine, "do_connect", _connect_or_unavailable)
    event.listen(engine.sync_engine, "handle_error", _connection_trouble_is_unavailability)
    return engine


def asyncpg_connect_args(settings: Settings) -> dict[str, Any]:
    """asyncpg's connect options, the same for the engine's pool and the reader's."""
    # A database that does not answer fails fast (503) rather than hanging requests.
    args: dict[str, Any] = {"timeout": settings.DB_CONNECT_TIMEOUT_SECONDS}
    if not settings.DB_STATEMENT_CACHE:
        # PgBouncer in transaction mode cannot keep prepared statements; with
        # the cache on, asyncpg's default size (100) applies.
        args["statement_cache_size"] = 0
    return args


async def open_asyncpg_pool(settings: Settings, connections: int) -> "asyncpg.Pool[Any]":
    """A small asyncpg pool of its own, beside the engine's, for a hot path
    that uses the driver directly (the batched reader, the refresh grant).
    Its users leave no session state behind (no open transaction, SET, LISTEN
    or advisory lock), so connections go back without asyncpg's reset query,
    a round trip per use."""
    url = make_url(settings.database_url).set(drivername="postgresql")
    return await asyncpg.create_pool(
        url.render_as_string(hide_password=False),
        min_size=0,
        max_size=connections,
        reset=_nothing_to_reset,
        **asyncpg_connect_args(settings),
    )


async def _nothing_to_reset(_: asyncpg.Connection) -> None:
    pass


def _connect_or_unavailable(
    dialect: Dialect, _: ConnectionPoolEntry, cargs: tuple[Any, ...], cparams: dict[str, Any]
) -> DBAPIConnection:
    """A connection that cannot be opened is DatabaseUnavailable (a 503).
    The server's refusals (wrong password, no such database, too many
    connections) reach handle_error below, but a network error (refused,
    timed out, unknown host) is no DBAPI error and would skip it."""
    try:
        return dialect.connect(*cargs, **cparams)
    except OSError as exc:
        raise DatabaseUnavailable(type(exc).__name__) from exc


def _connection_trouble_is_unavailability(context: ExceptionContext) -> BaseException | None:
    """The asyncpg dialect reports connection trouble (the server shutting
    down, restarting, refusing the credentials, the database dropped, a
    connection closed mid-query) as a bare DBAPIError, which would be a 500.
    Such errors invalidate the connection (so the pool reconnects) and are
    raised as DatabaseUnavailable (a 503), on a new connection as on a
    pooled one."""
    cause = connection_trouble(context.original_exception)
    if cause is None:
        return None
    context.is_disconnect = True
    if context.is_pre_ping:
        return None  # the pool replaces the connection itself
    unavailable = DatabaseUnavailable(type(cause).__name__)
    unavailable.__cause__ = context.sqlalchemy_exception
    return unavailable


def _sqlite_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Take the write lock up front: a deferred transaction that reads and
        # then writes fails with "database is locked" instead of waiting.
        # Read-only work takes no lock: WAL readers never wait for writers.
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")

    return engine


_READ_ONLY = "user_service_read_only"


def read_only(engine: AsyncEngine) -> AsyncEngine:
    """The same pool, for statements that change nothing: no transaction
    round trips on PostgreSQL, no write lock on SQLite."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(**{_READ_ONLY: True})
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def rows_changed(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE changed (0 when the driver cannot tell)."""
    return int(cast(CursorResult[Any], result).rowcount or 0)
