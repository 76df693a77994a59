"""The benchmark's database: which one, created if missing, migrated."""

import asyncio
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Table, delete, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine

from app.config import DatabaseSettings, Settings, async_driver_url
from app.core.value_objects.id import ID
from app.core.value_objects.page_cursor import PageCursor
from app.infra.db.models import (
    mail_cooldowns_table,
    mail_requests_table,
    outbox_table,
    users_table,
)
from bench.procs import REPO_ROOT, BenchError, child_env, run_checked

BENCH_DB_URL_ENV = "BENCH_DB_URL"
# The server --scale-compare creates its scratch databases on, when BENCH_DB_URL is unset.
DEFAULT_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
_USERS: Table = users_table
_MAIL_BY_ADDRESS: tuple[tuple[Table, str], ...] = (
    (mail_requests_table, "email"),
    (mail_cooldowns_table, "email"),
    (outbox_table, "to_email"),
)


@dataclass(frozen=True)
class Database:
    url: str

    @property
    def backend(self) -> str:
        return make_url(self.url).get_backend_name()

    @property
    def display(self) -> str:
        """The URL without its password, for the report."""
        return make_url(self.url).render_as_string(hide_password=True)


def fresh_database(workdir: Path) -> Database:
    """BENCH_DB_URL if set (created if missing), else a new SQLite file; migrated."""
    if raw := os.environ.get(BENCH_DB_URL_ENV, "").strip():
        database = Database(async_driver_url(raw))
        if database.backend == "postgresql":
            asyncio.run(_create_postgres_database(database.url))
    else:
        database = Database(f"sqlite+aiosqlite:///{workdir / 'bench.db'}")
    migrate(database, workdir)
    return database


def seeded_database() -> Database:
    """The database `make seed` filled: BENCH_DB_URL, else the app's own setting."""
    raw = os.environ.get(BENCH_DB_URL_ENV, "").strip() or DatabaseSettings().database_url
    url = make_url(async_driver_url(raw))
    # The servers run in a scratch directory: a relative SQLite path (the
    # default ./app.db) must be read from here, where make runs.
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).is_absolute():
        url = url.set(database=str(Path.cwd() / url.database))
    return Database(url.render_as_string(hide_password=False))


def migrate(database: Database, workdir: Path) -> None:
    run_checked(
        [sys.executable, "-m", "alembic", "-c", str(REPO_ROOT / "alembic.ini"), "upgrade", "head"],
        env=child_env({"DB_URL": database.url}, drop=list(Settings.model_fields)),
        cwd=workdir,
        what=f"alembic upgrade head on {database.display}",
    )


async def _create_postgres_database(url: str) -> None:
    target = make_url(url)
    name = target.database
    if not name:
        raise BenchError(f"{BENCH_DB_URL_ENV} names no database")
    # CREATE DATABASE cannot run in a transaction, and not in the database itself.
    engine = create_async_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            exists = await connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if not exists:
                quoted = '"' + name.replace('"', '""') + '"'
                await connection.execute(text(f"CREATE DATABASE {quoted}"))
    except (OSError, SQLAlchemyError) as exc:
        raise BenchError(
            f"PostgreSQL at {target.render_as_string()} is unreachable: {exc}"
        ) from exc
    finally:
        await engine.dispose()


# --- scratch databases (--scale-compare) ---------------------------------------


def admin_database() -> Database:
    """The connection CREATE/DROP DATABASE run on: BENCH_DB_URL, else DEFAULT_ADMIN_URL.

    Only its server and credentials matter to the scratch databases; the
    database it names is connected to, never changed.
    """
    raw = os.environ.get(BENCH_DB_URL_ENV, "").strip() or DEFAULT_ADMIN_URL
    database = Database(async_driver_url(raw))
    if database.backend != "postgresql":
        raise BenchError(
            f"{BENCH_DB_URL_ENV}={database.display}: --scale-compare needs a PostgreSQL server"
        )
    if not make_url(database.url).database:
        url = make_url(database.url).set(database="postgres")
        database = Database(url.render_as_string(hide_password=False))
    return database


def recreate_database(admin: Database, name: str) -> Database:
    """An empty database `name` on the admin connection's server (dropped first if it exists)."""
    if name == make_url(admin.url).database:
        raise BenchError(f"the scratch database {name!r} is the admin connection's own database")
    asyncio.run(_administer(admin, f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)"))
    asyncio.run(_administer(admin, f"CREATE DATABASE {_quoted(name)}"))
    return Database(make_url(admin.url).set(database=name).render_as_string(hide_password=False))


def drop_database(admin: Database, name: str) -> None:
    """DROP DATABASE ... WITH (FORCE): sessions still open on it are ended first."""
    asyncio.run(_administer(admin, f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)"))


def settle(database: Database) -> None:
    """VACUUM (visibility map, hint bits) and CHECKPOINT (the load's dirty pages written),
    so neither autovacuum nor a checkpoint of the load lands in the measurements."""
    asyncio.run(_administer(database, "VACUUM users, sessions, refresh_tokens", "CHECKPOINT"))


async def _administer(database: Database, *statements: str) -> None:
    # CREATE/DROP DATABASE and VACUUM cannot run in a transaction.
    engine = create_async_engine(
        database.url,
        isolation_level="AUTOCOMMIT",
        connect_args={"timeout": 10, "command_timeout": 600},
    )
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    except OSError as exc:
        raise BenchError(f"PostgreSQL at {database.display} is unreachable: {exc}") from exc
    except SQLAlchemyError as exc:
        raise BenchError(f"{'; '.join(statements)} on {database.display} failed: {exc}") from exc
    finally:
        await engine.dispose()


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class DeepPosition:
    users: int  # rows in the table
    offset: int  # the row the cursor names
    cursor: str  # encoded like the service's own next_cursor


def deep_position(database: Database, fraction: float) -> DeepPosition:
    """A cursor naming the row `fraction` of the way through the (created_at, id) order.

    OFFSET walks the rows, so it runs here, once, and never on the measured path.
    """
    return asyncio.run(_deep_position(database.url, fraction))


async def _deep_position(url: str, fraction: float) -> DeepPosition:
    columns = _USERS.c
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            users = int(await connection.scalar(select(func.count()).select_from(_USERS)) or 0)
            if users == 0:
                raise BenchError("the users table is empty: run `make seed` first")
            offset = min(int(users * fraction), users - 1)
            row = (
                await connection.execute(
                    select(columns.created_at, columns.id)
                    .order_by(columns.created_at, columns.id)
                    .offset(offset)
                    .limit(1)
                )
            ).one()
    except (OSError, SQLAlchemyError) as exc:
        raise BenchError(f"cannot read the users table ({exc}); run `make seed` first") from exc
    finally:
        await engine.dispose()
    return DeepPosition(users, offset, PageCursor(_utc(row.created_at), ID(row.id)).encode())


def delete_users(database: Database, emails: list[str], others: Sequence[str] = ()) -> int:
    """Removes the benchmark's own accounts from a database that outlives the run.

    SQL rather than the API: the service refuses to delete the last admin, and
    a bearer token of the run may have lost its session to later logins. Their
    sessions and refresh tokens go with them (ON DELETE CASCADE); the mail
    asked for them and for `others` (addresses of no account) goes too, so no
    backlog of recorded requests keeps the next run's service busy.
    """
    return asyncio.run(_delete_users(database.url, emails, [*emails, *others]))


async def _delete_users(url: str, emails: list[str], addresses: list[str]) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            if engine.dialect.name == "sqlite":  # SQLite enforces the cascade only when asked
                await connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            result = await connection.execute(delete(_USERS).where(_USERS.c.email.in_(emails)))
            for table, column in _MAIL_BY_ADDRESS:
                await connection.execute(delete(table).where(table.c[column].in_(addresses)))
            return int(result.rowcount)
    finally:
        await engine.dispose()


def _utc(moment: datetime) -> datetime:
    # As the repository reads it: SQLite returns naive UTC, PostgreSQL an aware time.
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
