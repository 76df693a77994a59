from typing import Any

from sqlalchemy import event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from app.config import Settings


def create_engine(settings: Settings) -> AsyncEngine:
    """One engine per process, with a bounded pool."""
    return _engine(
        settings,
        pool_size=settings.DB_POOL_SIZE,
        max_overflow=settings.DB_MAX_OVERFLOW,
        pre_ping=settings.DB_POOL_PRE_PING,
    )


def _engine(settings: Settings, pool_size: int, max_overflow: int, pre_ping: bool) -> AsyncEngine:
    url = settings.database_url
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    # A database that does not answer fails fast (503) rather than hanging requests.
    connect_args: dict[str, Any] = {"timeout": settings.DB_CONNECT_TIMEOUT_SECONDS}
    if not settings.DB_STATEMENT_CACHE:
        # PgBouncer in transaction mode cannot keep prepared statements.
        connect_args["statement_cache_size"] = 0
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=settings.DB_POOL_TIMEOUT_SECONDS,
        pool_pre_ping=pre_ping,
        connect_args=connect_args,
    )


def _sqlite_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(url, connect_args={"timeout": 30})

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
