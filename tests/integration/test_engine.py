"""create_engine: each backend gets the connection settings it needs, and
connection trouble of every kind is told apart from a bad statement."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import pytest
from sqlalchemy import exc, make_url, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import QueuePool

from app.core.value_objects import Email
from app.infra.db.engine import DatabaseUnavailable, connection_trouble, create_engine
from app.infra.db.rows_by_session import AsyncpgRowsBySession
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


def _elsewhere(postgres_url: str, **change: Any) -> str:
    return make_url(postgres_url).set(**change).render_as_string(hide_password=False)


# How a database refuses a new connection, and the driver error that says so.
REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "no such database (3D000)": ({"database": "no_such_database_here"}, "InvalidCatalogNameError"),
    "unknown role (28000)": (
        {"username": "no_such_role_here"},
        "InvalidAuthorizationSpecificationError",
    ),
    "nothing listening": ({"port": 9}, "ConnectionRefusedError"),
}


@pytest.mark.parametrize("refusal", REFUSED)
async def test_a_refused_connection_is_unavailability_on_both_pools(
    postgres_url: str, refusal: str
) -> None:
    """The SQLAlchemy pool (every route, /health/ready, the login throttle)
    and the reader's own asyncpg pool (every authenticated request) both
    raise DatabaseUnavailable, the API's 503, naming the driver's error."""
    change, driver_error = REFUSED[refusal]
    settings = make_settings(_elsewhere(postgres_url, **change), DB_CONNECT_TIMEOUT_SECONDS=2)
    engine = create_engine(settings)
    rows = await AsyncpgRowsBySession.open(settings, 1)
    try:
        with pytest.raises(DatabaseUnavailable, match=f"^{driver_error}$"):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        with pytest.raises(DatabaseUnavailable, match=f"^{driver_error}$"):
            await rows([uuid.uuid4()])
    finally:
        await rows.close()
        await engine.dispose()


async def test_a_bad_statement_or_argument_is_no_unavailability(postgres_url: str) -> None:
    """A bug stays a bug (a 500 with its traceback), not a 503 that hides it."""
    settings = make_settings(postgres_url)
    engine = create_engine(settings)
    rows = await AsyncpgRowsBySession.open(settings, 1)
    try:
        with pytest.raises(exc.ProgrammingError):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT * FROM no_such_table"))
        with pytest.raises(asyncpg.exceptions.DataError):  # SQLSTATE 22000
            await rows(["not-a-uuid"])  # type: ignore[list-item]
    finally:
        await rows.close()
        await engine.dispose()


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (asyncpg.exceptions.AdminShutdownError("terminating connection"), True),  # 57P01
        (asyncpg.exceptions.CannotConnectNowError("starting up"), True),  # 57P03
        (asyncpg.exceptions.TooManyConnectionsError("too many"), True),  # 53300
        (asyncpg.exceptions.InvalidPasswordError("password failed"), True),  # 28P01
        (asyncpg.exceptions.ConnectionDoesNotExistError("closed mid-query"), True),  # 08003
        (asyncpg.InterfaceError("connection is closed"), True),
        (ConnectionResetError(), True),
        (asyncpg.exceptions.QueryCanceledError("statement timeout"), False),  # 57014
        (asyncpg.exceptions.UndefinedTableError("no such table"), False),  # 42P01
        (asyncpg.exceptions.UniqueViolationError("duplicate"), False),  # 23505
        (ValueError("a bug"), False),
    ],
)
def test_connection_trouble_is_told_by_sqlstate_class(error: Exception, unavailable: bool) -> None:
    wrapped = RuntimeError("wrapper")
    wrapped.__cause__ = error
    assert (connection_trouble(wrapped) is error) is unavailable
