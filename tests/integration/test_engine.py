"""create_engine: each backend gets the connection settings it needs."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import QueuePool

from app.core.value_objects import Email
from app.infra.db.engine import create_engine
from tests.conftest import make_settings
from tests.integration.helpers import a_user, load, uow_for


@pytest.fixture
async def tuned_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(
        make_settings(database_url, DB_POOL_SIZE=2, DB_MAX_OVERFLOW=1, DB_POOL_TIMEOUT_SECONDS=0.2)
    )
    yield engine
    await engine.dispose()


async def _pragmas(connection: AsyncConnection) -> tuple[object, ...]:
    values = tuple(
        [
            await connection.scalar(text(f"PRAGMA {name}"))
            for name in ("journal_mode", "busy_timeout", "foreign_keys")
        ]
    )
    # Every transaction holds SQLite's write lock: end it before opening another.
    await connection.commit()
    return values


async def _check_sqlite_connections(engine: AsyncEngine) -> None:
    # Two connections checked out at once, so the set-up runs on every new one.
    async with engine.connect() as first:
        assert await _pragmas(first) == ("wal", 30000, 1)
        async with engine.connect() as second:
            assert await _pragmas(second) == ("wal", 30000, 1)
            assert second.sync_connection is not None
            assert first.sync_connection is not None
            assert (
                second.sync_connection.connection.dbapi_connection
                is not first.sync_connection.connection.dbapi_connection
            )


async def _check_postgres_pool(engine: AsyncEngine) -> None:
    assert isinstance(engine.pool, QueuePool)
    assert engine.pool.size() == 2
    assert engine.pool.timeout() == 0.2
    async with AsyncExitStack() as stack:
        # pool_size + max_overflow connections, all usable at once...
        for _ in range(3):
            connection = await stack.enter_async_context(engine.connect())
            assert await connection.scalar(text("SELECT 1")) == 1
        # ...and no more: the next caller gives up after the pool timeout.
        with pytest.raises(exc.TimeoutError):
            async with engine.connect():
                pass
    assert engine.pool.checkedout() == 0


async def test_connections_are_tuned_for_the_backend(tuned_engine: AsyncEngine) -> None:
    if tuned_engine.dialect.name == "sqlite":
        await _check_sqlite_connections(tuned_engine)
    else:
        await _check_postgres_pool(tuned_engine)


async def _prepared_statements(connection: AsyncConnection) -> int:
    await connection.execute(text("SELECT 1"))
    await connection.commit()
    count = await connection.scalar(text("SELECT count(*) FROM pg_prepared_statements"))
    await connection.commit()
    assert isinstance(count, int)
    return count


async def test_statement_cache_can_be_turned_off(
    database_url: str, clean_engine: AsyncEngine
) -> None:
    engine = create_engine(make_settings(database_url, DB_STATEMENT_CACHE=False))
    try:
        user = a_user()
        for _ in range(3):  # the same statements again and again
            async with uow_for(engine) as uow:
                assert await uow.users.get_by_email(Email("ann@example.com")) is None
                await uow.users.add(user)
                assert await uow.users.get_by_id(user.id) is not None
        async with uow_for(engine) as uow:
            await uow.users.add(user)
            await uow.commit()
        assert await load(engine, user) is not None
        if engine.dialect.name == "postgresql":
            # Behind PgBouncer in transaction mode no named statement may outlive
            # its transaction; the default engine keeps them, this one must not.
            async with engine.connect() as connection:
                assert await _prepared_statements(connection) == 0
            async with clean_engine.connect() as connection:
                assert await _prepared_statements(connection) > 0
    finally:
        await engine.dispose()


async def test_concurrent_writers_all_succeed(database_url: str, clean_engine: AsyncEngine) -> None:
    engine = create_engine(make_settings(database_url))
    users = [a_user(f"user{i}@example.com", f"User {i}") for i in range(10)]

    async def register(index: int) -> None:
        user = users[index]
        # Each register reads and then writes, the pattern that upgrades a
        # deferred SQLite transaction and can fail with "database is locked".
        async with uow_for(engine) as uow:
            assert await uow.users.get_by_email(user.email) is None
            await uow.users.add(user)
            await uow.commit()

    try:
        await asyncio.gather(*(register(i) for i in range(10)))
    finally:
        await engine.dispose()

    for user in users:
        assert await load(clean_engine, user) is not None
