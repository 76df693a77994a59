"""Bulk-load users for benchmarks: `make seed N=1000000` (python -m bench.seed --count N).

Loads into the database the app is configured for (DB_URL from the environment
or `.env`; the embedded SQLite file otherwise). PostgreSQL is loaded with COPY
on a raw asyncpg connection and analysed afterwards; SQLite gets executemany in
one transaction per batch.

Every seeded user:
- email `user{i:07d}@seed.example`, name `Seed User {i}`, role `user`, active,
  token_version 0;
- password SEED_PASSWORD ("seeded-user-password"), one bcrypt hash computed
  once with the app's hasher at BCRYPT_ROUNDS (from the settings, default 12),
  so a login costs what a real one does;
- created_at = 2020-01-01T00:00:00Z + i milliseconds (strictly increasing,
  UTC), updated_at = created_at, a uuid4 id.

A second run continues after the highest seeded index already present, so it
adds users without clashing; `--start` picks the first index explicitly.
"""

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import insert, make_url, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from app.config import DatabaseSettings, Settings
from app.core.value_objects import Password
from app.infra.db.models import users_table
from app.infra.security.bcrypt_hasher import BcryptPasswordHasher

SEED_PASSWORD = "seeded-user-password"  # noqa: S105 - documented on purpose
BASE_TIME = datetime(2020, 1, 1, tzinfo=UTC)
DEFAULT_BATCH = 50_000
COLUMNS = (
    "id",
    "email",
    "name",
    "hashed_password",
    "role",
    "is_active",
    "token_version",
    "created_at",
    "updated_at",
)
UserRecord = tuple[uuid.UUID, str, str, str, str, bool, int, datetime, datetime]

# The highest index seeded so far: the digits between "user" and "@seed.example".
_MAX_INDEX_SQLITE = (
    "SELECT max(CAST(substr(email, 5, length(email) - 17) AS BIGINT)) FROM users"
    " WHERE email LIKE 'user%@seed.example'"
)
# PostgreSQL refuses to cast non-digits, so only emails that are all digits count.
_MAX_INDEX_POSTGRES = (
    "SELECT max(CAST(substr(email, 5, length(email) - 17) AS BIGINT)) FROM users"
    " WHERE email ~ '^user[0-9]+@seed\\.example$'"
)


class SeedSettings(DatabaseSettings):
    """The database settings plus the bcrypt cost, without requiring a JWT secret."""

    BCRYPT_ROUNDS: int = Settings.model_fields["BCRYPT_ROUNDS"].default


@dataclass(frozen=True)
class Plan:
    url: str
    count: int
    batch: int
    start: int | None
    hashed_password: str


def seed_email(index: int) -> str:
    return f"user{index:07d}@seed.example"


def user_record(index: int, hashed_password: str) -> UserRecord:
    created = BASE_TIME + timedelta(milliseconds=index)
    return (
        uuid.uuid4(),
        seed_email(index),
        f"Seed User {index}",
        hashed_password,
        "user",
        True,
        0,
        created,
        created,
    )


def user_records(first: int, count: int, hashed_password: str) -> Iterator[UserRecord]:
    return (user_record(i, hashed_password) for i in range(first, first + count))


def batches(first: int, count: int, size: int) -> Iterator[tuple[int, int]]:
    """(first index, rows) of each batch."""
    for offset in range(0, count, size):
        yield first + offset, min(size, count - offset)


async def hash_seed_password(rounds: int) -> str:
    """One hash, made by the app's own hasher so the app verifies it as usual."""
    hasher = BcryptPasswordHasher(rounds, workers=1, queue_timeout=600)
    try:
        return (await hasher.hash(Password(SEED_PASSWORD))).value
    finally:
        hasher.close()


def next_index(highest: int | None) -> int:
    return 0 if highest is None else highest + 1


def report_batch(done: int, total: int, started: float) -> None:
    elapsed = time.perf_counter() - started
    print(f"  {done:>12,} / {total:,} rows  {done / elapsed:>10,.0f} rows/s", flush=True)


# PostgreSQL: COPY on a raw asyncpg connection.


def asyncpg_dsn(url: str) -> str:
    """postgresql+asyncpg://... -> postgresql://... (asyncpg takes a libpq-style DSN)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def analyze(connection: Any) -> None:
    """Fresh planner statistics, so the benchmark sees the plans production would."""
    started = time.perf_counter()
    await connection.execute("ANALYZE users")
    print(f"  ANALYZE users: {time.perf_counter() - started:.1f}s", flush=True)


async def seed_postgres(plan: Plan) -> int:
    connection: Any = await asyncpg.connect(asyncpg_dsn(plan.url))
    try:
        first = plan.start
        if first is None:
            first = next_index(await connection.fetchval(_MAX_INDEX_POSTGRES))
        started = time.perf_counter()
        for batch_first, rows in batches(first, plan.count, plan.batch):
            await connection.copy_records_to_table(
                "users",
                columns=COLUMNS,
                records=user_records(batch_first, rows, plan.hashed_password),
            )
            report_batch(batch_first - first + rows, plan.count, started)
        await analyze(connection)
    finally:
        await connection.close()
    return first


# SQLite (or any other SQLAlchemy backend): executemany, one transaction per batch.


async def _max_index_sqlite(connection: AsyncConnection) -> int | None:
    highest = (await connection.execute(text(_MAX_INDEX_SQLITE))).scalar()
    return None if highest is None else int(highest)


async def seed_sqlalchemy(plan: Plan) -> int:
    engine = create_async_engine(plan.url)
    table = users_table
    try:
        first = plan.start
        if first is None:
            async with engine.connect() as connection:
                first = next_index(await _max_index_sqlite(connection))
        started = time.perf_counter()
        for batch_first, rows in batches(first, plan.count, plan.batch):
            values = [
                dict(zip(COLUMNS, record, strict=True))
                for record in user_records(batch_first, rows, plan.hashed_password)
            ]
            async with engine.begin() as connection:
                await connection.execute(insert(table), values)
            report_batch(batch_first - first + rows, plan.count, started)
    finally:
        await engine.dispose()
    return first


async def seed(plan: Plan) -> int:
    """Loads the users; returns the first index used."""
    if plan.url.startswith("postgresql"):
        return await seed_postgres(plan)
    return await seed_sqlalchemy(plan)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.seed", description="Bulk-load seeded users."
    )
    parser.add_argument("--count", type=_non_negative, default=1000, help="users to add")
    parser.add_argument("--batch", type=_positive, default=DEFAULT_BATCH, help="rows per batch")
    parser.add_argument(
        "--start",
        type=_non_negative,
        default=None,
        help="first index (default: one past the highest seeded index already present)",
    )
    return parser.parse_args(argv)


def _non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return number


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


async def run(args: argparse.Namespace) -> None:
    settings = SeedSettings()
    url = settings.database_url
    print(f"Seeding {args.count:,} users into {make_url(url).render_as_string()}")
    started = time.perf_counter()
    hashed = await hash_seed_password(settings.BCRYPT_ROUNDS)
    print(f"Hashed {SEED_PASSWORD!r} once ({settings.BCRYPT_ROUNDS} rounds)", flush=True)
    loading = time.perf_counter()
    first = await seed(Plan(url, args.count, args.batch, args.start, hashed))
    done = time.perf_counter()
    rate = args.count / (done - loading) if done > loading else 0.0  # ANALYZE included
    last = seed_email(first + args.count - 1) if args.count else "-"
    print(
        f"Loaded {args.count:,} users ({seed_email(first)} .. {last}) in "
        f"{done - loading:.1f}s: {rate:,.0f} rows/s ({done - started:.1f}s in all). "
        f"Password: {SEED_PASSWORD}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    try:
        asyncio.run(run(parse_args(argv)))
    except (asyncpg.UniqueViolationError, IntegrityError) as exc:
        first_line = str(exc).splitlines()[0]
        print(
            f"A seeded email already exists; choose another --start ({first_line})", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
