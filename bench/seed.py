"""Bulk-load users for benchmarks: `make seed N=1000000` (python -m bench.seed --count N).

Loads into the database the app is configured for (DB_URL from the environment
or `.env`; the embedded SQLite file otherwise). PostgreSQL is loaded with COPY
on a raw asyncpg connection, one transaction per batch, and the three tables
are analysed afterwards; SQLite gets executemany in one transaction per batch.

Every seeded user:
- email `user{i:07d}@seed.example`, name `Seed User {i}`, role `user`, active,
  token_version 0;
- password SEED_PASSWORD ("seeded-user-password"), one bcrypt hash computed
  once with the app's hasher at BCRYPT_ROUNDS (from the settings, default 12),
  so a login costs what a real one does;
- created_at = 2020-01-01T00:00:00Z + i milliseconds (strictly increasing,
  UTC), updated_at = created_at, a uuid4 id;
- one live session, as a login when the seed starts ("now") leaves it: a uuid4
  id, created_at = last_used_at = now, expires_at = now +
  SESSION_MAX_LIFETIME_MINUTES, not ended, user agent SEED_USER_AGENT;
- one unspent refresh token of that session, stored as the service stores its
  own (OpaqueToken's SHA-256 digest) for the token `seed-refresh-{i:07d}`,
  issued now, expiring at now + REFRESH_TOKEN_EXPIRE_MINUTES (not after the
  session). The lifetimes are the settings' (defaults 30 days and 7 days), so
  the sessions stay live for days after the seed.

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
from sqlalchemy import Table, insert, make_url, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from app.config import DatabaseSettings, Settings
from app.core.value_objects import Password
from app.core.value_objects.opaque_token import OpaqueToken
from app.infra.db.models import refresh_tokens_table, sessions_table, users_table
from app.infra.security.bcrypt_hasher import BcryptPasswordHasher

SEED_PASSWORD = "seeded-user-password"  # noqa: S105 - documented on purpose
SEED_USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
BASE_TIME = datetime(2020, 1, 1, tzinfo=UTC)
DEFAULT_BATCH = 50_000
USER_COLUMNS = (
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
SESSION_COLUMNS = (
    "id",
    "user_id",
    "created_at",
    "last_used_at",
    "expires_at",
    "ended_at",
    "user_agent",
)
TOKEN_COLUMNS = ("token_hash", "session_id", "issued_at", "expires_at", "spent_at", "respent")
UserRecord = tuple[uuid.UUID, str, str, str, str, bool, int, datetime, datetime]
SessionRecord = tuple[uuid.UUID, uuid.UUID, datetime, datetime, datetime, None, str]
TokenRecord = tuple[str, uuid.UUID, datetime, datetime, None, bool]

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


def _default(setting: str) -> Any:
    return Settings.model_fields[setting].default


@dataclass(frozen=True)
class Lifetimes:
    """How long a session and a refresh token live: by default, the service's defaults."""

    session: timedelta = timedelta(minutes=_default("SESSION_MAX_LIFETIME_MINUTES"))
    refresh_token: timedelta = timedelta(minutes=_default("REFRESH_TOKEN_EXPIRE_MINUTES"))


class SeedSettings(DatabaseSettings):
    """The database settings plus the bcrypt cost and the session lifetimes,
    without requiring a JWT secret."""

    BCRYPT_ROUNDS: int = _default("BCRYPT_ROUNDS")
    REFRESH_TOKEN_EXPIRE_MINUTES: int = _default("REFRESH_TOKEN_EXPIRE_MINUTES")
    SESSION_MAX_LIFETIME_MINUTES: int = _default("SESSION_MAX_LIFETIME_MINUTES")

    @property
    def lifetimes(self) -> Lifetimes:
        return Lifetimes(
            session=timedelta(minutes=self.SESSION_MAX_LIFETIME_MINUTES),
            refresh_token=timedelta(minutes=self.REFRESH_TOKEN_EXPIRE_MINUTES),
        )


@dataclass(frozen=True)
class Plan:
    url: str
    count: int
    batch: int
    start: int | None
    hashed_password: str
    lifetimes: Lifetimes = Lifetimes()


@dataclass(frozen=True)
class Login:
    """When every seeded session started and when it and its token expire, as
    Session.start and RefreshToken.issue set them for a login at `at`."""

    at: datetime
    session_expires: datetime
    token_expires: datetime

    @classmethod
    def now(cls, lifetimes: Lifetimes) -> "Login":
        at = datetime.now(UTC)
        session_expires = at + lifetimes.session
        return cls(at, session_expires, min(at + lifetimes.refresh_token, session_expires))


def seed_email(index: int) -> str:
    return f"user{index:07d}@seed.example"


def seed_refresh_token(index: int) -> OpaqueToken:
    """User `index`'s seeded refresh token, which refreshes that user's seeded session."""
    return OpaqueToken(f"seed-refresh-{index:07d}")


def user_record(index: int, user_id: uuid.UUID, hashed_password: str) -> UserRecord:
    created = BASE_TIME + timedelta(milliseconds=index)
    return (
        user_id,
        seed_email(index),
        f"Seed User {index}",
        hashed_password,
        "user",
        True,
        0,
        created,
        created,
    )


@dataclass(frozen=True)
class Batch:
    """Consecutive seeded users. Only the ids are kept: each table's rows are
    made as the load reads them, so PostgreSQL works while Python makes more."""

    first: int
    user_ids: list[uuid.UUID]
    session_ids: list[uuid.UUID]
    hashed_password: str
    login: Login

    @classmethod
    def new(cls, first: int, count: int, hashed_password: str, login: Login) -> "Batch":
        user_ids = [uuid.uuid4() for _ in range(count)]
        session_ids = [uuid.uuid4() for _ in range(count)]
        return cls(first, user_ids, session_ids, hashed_password, login)

    def tables(self) -> list[tuple[Table, tuple[str, ...], Iterator[tuple[Any, ...]]]]:
        """Each table, the columns given and the rows, parents first."""
        return [
            (users_table, USER_COLUMNS, self.users()),
            (sessions_table, SESSION_COLUMNS, self.sessions()),
            (refresh_tokens_table, TOKEN_COLUMNS, self.tokens()),
        ]

    def users(self) -> Iterator[UserRecord]:
        for offset, user_id in enumerate(self.user_ids):
            yield user_record(self.first + offset, user_id, self.hashed_password)

    def sessions(self) -> Iterator[SessionRecord]:
        at, expires = self.login.at, self.login.session_expires
        for session_id, user_id in zip(self.session_ids, self.user_ids, strict=True):
            yield (session_id, user_id, at, at, expires, None, SEED_USER_AGENT)

    def tokens(self) -> Iterator[TokenRecord]:
        at, expires = self.login.at, self.login.token_expires
        for offset, session_id in enumerate(self.session_ids):
            digest = seed_refresh_token(self.first + offset).digest
            yield (digest, session_id, at, expires, None, False)


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
    print(f"  {done:>12,} / {total:,} users  {done / elapsed:>10,.0f} users/s", flush=True)


# PostgreSQL: COPY on a raw asyncpg connection.


def asyncpg_dsn(url: str) -> str:
    """postgresql+asyncpg://... -> postgresql://... (asyncpg takes a libpq-style DSN)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def analyze(connection: Any) -> None:
    """Fresh planner statistics, so the benchmark sees the plans production would."""
    started = time.perf_counter()
    await connection.execute("ANALYZE users, sessions, refresh_tokens")
    print(f"  ANALYZE: {time.perf_counter() - started:.1f}s", flush=True)


async def seed_postgres(plan: Plan) -> int:
    connection: Any = await asyncpg.connect(asyncpg_dsn(plan.url))
    try:
        first = plan.start
        if first is None:
            first = next_index(await connection.fetchval(_MAX_INDEX_POSTGRES))
        login = Login.now(plan.lifetimes)
        started = time.perf_counter()
        for batch_first, rows in batches(first, plan.count, plan.batch):
            batch = Batch.new(batch_first, rows, plan.hashed_password, login)
            async with connection.transaction():
                for table, columns, records in batch.tables():
                    await connection.copy_records_to_table(
                        table.name, columns=columns, records=records
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
    try:
        first = plan.start
        if first is None:
            async with engine.connect() as connection:
                first = next_index(await _max_index_sqlite(connection))
        login = Login.now(plan.lifetimes)
        started = time.perf_counter()
        for batch_first, rows in batches(first, plan.count, plan.batch):
            batch = Batch.new(batch_first, rows, plan.hashed_password, login)
            async with engine.begin() as connection:
                for table, columns, records in batch.tables():
                    values = [dict(zip(columns, record, strict=True)) for record in records]
                    await connection.execute(insert(table), values)
            report_batch(batch_first - first + rows, plan.count, started)
    finally:
        await engine.dispose()
    return first


async def seed(plan: Plan) -> int:
    """Loads the users, each with a session and its refresh token; returns the first index used."""
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
    plan = Plan(url, args.count, args.batch, args.start, hashed, settings.lifetimes)
    first = await seed(plan)
    done = time.perf_counter()
    rate = args.count / (done - loading) if done > loading else 0.0  # ANALYZE included
    last = seed_email(first + args.count - 1) if args.count else "-"
    print(
        f"Loaded {args.count:,} users with a session and a refresh token each"
        f" ({seed_email(first)} .. {last}) in {done - loading:.1f}s: {rate:,.0f} users/s,"
        f" {3 * rate:,.0f} rows/s ({done - started:.1f}s in all). Password: {SEED_PASSWORD}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    try:
        asyncio.run(run(parse_args(argv)))
    except (asyncpg.UniqueViolationError, IntegrityError) as exc:
        first_line = str(exc).splitlines()[0]
        print(
            f"A seeded user already exists; choose another --start ({first_line})", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
