"""Housekeeping against a real database: what one pass deletes, table by
table, and what it keeps; batching; the periodic task surviving a failed
pass; and `python -m app.cli purge-expired` as operators run it."""

import asyncio
import logging
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Table, event, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.entities import OneTimeToken, RefreshToken, Session, TokenPurpose, User
from app.core.value_objects import Email
from app.core.value_objects.opaque_token import OpaqueToken
from app.infra.composition import housekeeping, recovery_limiter
from app.infra.db.engine import create_engine, create_sessionmaker
from app.infra.db.housekeeping import Housekeeping
from app.infra.db.mapping import utc
from app.infra.db.models import (
    mail_cooldowns_table,
    mail_requests_table,
    one_time_tokens_table,
    outbox_table,
    refresh_tokens_table,
    request_counters_table,
    sessions_table,
    users_table,
)
from tests.conftest import ROOT, TEST_SECRET, alembic_config, make_settings
from tests.integration.helpers import T0, a_user, save, store_session, uow_for
from tests.unit.fakes import FakeClock

NOW = T0 + timedelta(days=60)
COOLDOWN = timedelta(seconds=60)  # RECOVERY_EMAIL_COOLDOWN_SECONDS
WINDOW = timedelta(seconds=3600)  # the recovery limiter's window
SENT_KEPT = timedelta(days=7)
SECOND = timedelta(seconds=1)
TABLES = (
    "sessions",
    "refresh_tokens",
    "one_time_tokens",
    "outbox",
    "mail_cooldowns",
    "request_counters",
)


def deleted(**counts: int) -> dict[str, int]:
    """What purge_once returns: every table, zero unless given."""
    return {table: counts.get(table, 0) for table in TABLES}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


def cleaner_for(
    database_url: str, engine: AsyncEngine, clock: FakeClock, **overrides: object
) -> Housekeeping:
    """Housekeeping as the app builds it from its settings."""
    settings = make_settings(
        database_url, RECOVERY_EMAIL_COOLDOWN_SECONDS=int(COOLDOWN.total_seconds()), **overrides
    )
    return housekeeping(settings, create_sessionmaker(engine), clock)


@pytest.fixture
def cleaner(database_url: str, clean_engine: AsyncEngine, clock: FakeClock) -> Housekeeping:
    return cleaner_for(database_url, clean_engine, clock)


@pytest.fixture
async def ann(clean_engine: AsyncEngine) -> User:
    user = a_user("ann@example.com", "Ann")
    await save(clean_engine, user)
    return user


async def remaining(engine: AsyncEngine, table: Table) -> set[str]:
    """The primary keys left in `table`, as strings."""
    key = next(iter(table.primary_key.columns))
    async with engine.connect() as connection:
        return {str(value) for value in (await connection.execute(select(key))).scalars()}


async def add_refresh_token(engine: AsyncEngine, session: Session, expires_at: datetime) -> str:
    token = RefreshToken(
        digest=OpaqueToken.new().digest,
        session_id=session.id,
        issued_at=session.created_at,
        expires_at=expires_at,
    )
    async with uow_for(engine) as uow:
        await uow.refresh_tokens.add(token)
        await uow.commit()
    return token.digest


async def add_one_time_token(
    engine: AsyncEngine, user: User, expires_at: datetime, *, used_at: datetime | None = None
) -> str:
    token = OneTimeToken(
        digest=OpaqueToken.new().digest,
        purpose=TokenPurpose.PASSWORD_RESET,
        user_id=user.id,
        email=user.email.value,
        created_at=expires_at - timedelta(hours=2),
        expires_at=expires_at,
        used_at=used_at,
    )
    async with uow_for(engine) as uow:
        await uow.one_time_tokens.add(token)
        await uow.commit()
    return token.digest


async def add_outbox_row(
    engine: AsyncEngine,
    *,
    created_at: datetime,
    sent_at: datetime | None = None,
    failed_at: datetime | None = None,
) -> str:
    """A row as the dispatcher leaves it: sent (body cleared), failed, or pending."""
    row_id = uuid.uuid4()
    done = sent_at is not None or failed_at is not None
    async with engine.begin() as connection:
        await connection.execute(
            insert(outbox_table).values(
                id=row_id,
                to_email="ann@example.com",
                to_name="Ann",
                subject="Reset your password",
                text_body=None if sent_at else "https://app.example/reset-password#token=x",
                html_body=None,
                created_at=utc(created_at),
                attempts=5 if failed_at else (1 if done else 0),
                next_attempt_at=utc(created_at),
                sent_at=utc(sent_at) if sent_at else None,
                failed_at=utc(failed_at) if failed_at else None,
                last_error="SMTPRecipientsRefused" if failed_at else None,
            )
        )
    return str(row_id)


async def claim_cooldown(engine: AsyncEngine, email: str, at: datetime) -> str:
    """The cooldown a recovery mail to `email` at `at` starts."""
    async with uow_for(engine) as uow:
        assert await uow.mail_requests.claim_cooldown(Email(email), at, COOLDOWN)
        await uow.commit()
    return email


async def count_request(database_url: str, engine: AsyncEngine, client: str, at: datetime) -> str:
    """One recovery request from `client` at `at`, counted as the app counts it."""
    limiter = recovery_limiter(
        make_settings(database_url), create_sessionmaker(engine), FakeClock(at)
    )
    assert await limiter.hit(client) is None
    return f"recovery:{client}"


# What one pass deletes, table by table.


async def test_sessions_ended_or_past_their_limit_go_with_their_refresh_tokens(
    cleaner: Housekeeping, clean_engine: AsyncEngine, ann: User
) -> None:
    month = timedelta(days=30)
    ended = await store_session(
        clean_engine, ann, created_at=NOW - timedelta(days=1), ended_at=NOW - timedelta(hours=1)
    )
    expired = await store_session(clean_engine, ann, created_at=NOW - month - timedelta(days=1))
    await store_session(clean_engine, ann, created_at=NOW - month)  # its limit is now
    live = await store_session(clean_engine, ann, created_at=NOW - timedelta(days=1))
    barely_live = await store_session(clean_engine, ann, created_at=NOW - month + SECOND)
    # Unexpired tokens of doomed sessions: only the cascade removes them.
    await add_refresh_token(clean_engine, ended, NOW + timedelta(days=6))
    await add_refresh_token(clean_engine, expired, NOW + timedelta(days=6))
    kept_token = await add_refresh_token(clean_engine, live, NOW + timedelta(days=6))

    assert await cleaner.purge_once() == deleted(sessions=3)

    assert await remaining(clean_engine, sessions_table) == {
        str(live.id.value),
        str(barely_live.id.value),
    }
    assert await remaining(clean_engine, refresh_tokens_table) == {kept_token}
    assert await remaining(clean_engine, users_table) == {str(ann.id.value)}


async def test_expired_refresh_tokens_of_a_live_session_go_and_the_rest_stays(
    cleaner: Housekeeping, clean_engine: AsyncEngine, ann: User
) -> None:
    live = await store_session(clean_engine, ann, created_at=NOW - timedelta(days=8))
    await add_refresh_token(clean_engine, live, NOW - timedelta(days=1))
    await add_refresh_token(clean_engine, live, NOW)  # expires this very moment
    unexpired = await add_refresh_token(clean_engine, live, NOW + SECOND)

    assert await cleaner.purge_once() == deleted(refresh_tokens=2)

    assert await remaining(clean_engine, sessions_table) == {str(live.id.value)}
    assert await remaining(clean_engine, refresh_tokens_table) == {unexpired}


async def test_expired_one_time_tokens_go_and_unexpired_ones_stay_even_used(
    cleaner: Housekeeping, clean_engine: AsyncEngine, ann: User
) -> None:
    await add_one_time_token(clean_engine, ann, NOW - timedelta(hours=1))
    await add_one_time_token(clean_engine, ann, NOW)  # expires this very moment
    await add_one_time_token(
        clean_engine, ann, NOW - timedelta(hours=1), used_at=NOW - timedelta(hours=2)
    )
    unexpired = await add_one_time_token(clean_engine, ann, NOW + SECOND)
    # A used token still answers a repeated verification until it expires.
    used = await add_one_time_token(
        clean_engine, ann, NOW + timedelta(hours=1), used_at=NOW - timedelta(minutes=5)
    )

    assert await cleaner.purge_once() == deleted(one_time_tokens=3)

    assert await remaining(clean_engine, one_time_tokens_table) == {unexpired, used}


async def test_sent_mail_older_than_a_week_goes_and_pending_or_failed_mail_stays(
    cleaner: Housekeeping, clean_engine: AsyncEngine
) -> None:
    month_ago = NOW - timedelta(days=30)
    await add_outbox_row(clean_engine, created_at=month_ago, sent_at=month_ago)
    await add_outbox_row(clean_engine, created_at=month_ago, sent_at=NOW - SENT_KEPT - SECOND)
    recent = await add_outbox_row(
        clean_engine, created_at=month_ago, sent_at=NOW - SENT_KEPT + SECOND
    )
    pending = await add_outbox_row(clean_engine, created_at=month_ago)
    failed = await add_outbox_row(
        clean_engine, created_at=month_ago, failed_at=NOW - timedelta(days=20)
    )

    assert await cleaner.purge_once() == deleted(outbox=2)

    assert await remaining(clean_engine, outbox_table) == {recent, pending, failed}


async def test_cooldowns_that_are_over_go(cleaner: Housekeeping, clean_engine: AsyncEngine) -> None:
    await claim_cooldown(clean_engine, "old@example.com", NOW - timedelta(days=1))
    await claim_cooldown(clean_engine, "ended@example.com", NOW - COOLDOWN)  # ends now
    running = await claim_cooldown(clean_engine, "recent@example.com", NOW - COOLDOWN + SECOND)

    assert await cleaner.purge_once() == deleted(mail_cooldowns=2)

    assert await remaining(clean_engine, mail_cooldowns_table) == {running}
    async with uow_for(clean_engine) as uow:
        # The kept cooldown still holds; a purged address may get mail at once.
        assert not await uow.mail_requests.claim_cooldown(Email(running), NOW, COOLDOWN)
        assert await uow.mail_requests.claim_cooldown(Email("ended@example.com"), NOW, COOLDOWN)


async def test_request_counters_whose_window_is_over_go(
    cleaner: Housekeeping, clean_engine: AsyncEngine, database_url: str
) -> None:
    await count_request(database_url, clean_engine, "192.0.2.1", NOW - timedelta(hours=2))
    await count_request(database_url, clean_engine, "192.0.2.2", NOW - WINDOW)  # ends now
    current = await count_request(database_url, clean_engine, "192.0.2.3", NOW - WINDOW + SECOND)

    assert await cleaner.purge_once() == deleted(request_counters=2)

    assert await remaining(clean_engine, request_counters_table) == {current}


async def test_pending_mail_requests_and_users_are_never_purged(
    cleaner: Housekeeping, clean_engine: AsyncEngine, ann: User
) -> None:
    async with uow_for(clean_engine) as uow:
        await uow.mail_requests.add(
            TokenPurpose.PASSWORD_RESET, Email("ann@example.com"), NOW - timedelta(days=30)
        )
        await uow.commit()

    assert await cleaner.purge_once() == deleted()

    assert len(await remaining(clean_engine, mail_requests_table)) == 1
    assert await remaining(clean_engine, users_table) == {str(ann.id.value)}


# Batches.


class DeleteLog:
    """The rows each DELETE statement removed, per table, as the driver reports them."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.rows: dict[str, list[int]] = {}

    def __call__(self, _conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        if match := re.match(r"\s*DELETE FROM (\w+)", statement):
            self.rows.setdefault(match.group(1), []).append(cursor.rowcount)

    def __enter__(self) -> "DeleteLog":
        event.listen(self.engine.sync_engine, "after_cursor_execute", self)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine.sync_engine, "after_cursor_execute", self)


async def test_one_pass_deletes_everything_due_in_batches_of_the_configured_size(
    database_url: str, clean_engine: AsyncEngine, clock: FakeClock, ann: User
) -> None:
    cleaner = cleaner_for(database_url, clean_engine, clock, CLEANUP_BATCH_SIZE=3)
    long_ago = NOW - timedelta(days=60)
    live = await store_session(clean_engine, ann, created_at=NOW - timedelta(days=1))
    kept_token = await add_refresh_token(clean_engine, live, NOW + timedelta(days=1))
    for i in range(10):
        await store_session(clean_engine, ann, created_at=long_ago, ended_at=long_ago + SECOND)
        await add_refresh_token(clean_engine, live, NOW - timedelta(minutes=i + 1))
        await add_one_time_token(clean_engine, ann, NOW - timedelta(minutes=i + 1))
        await add_outbox_row(clean_engine, created_at=long_ago, sent_at=long_ago)
        await claim_cooldown(clean_engine, f"user{i}@example.com", long_ago)
        await count_request(database_url, clean_engine, f"192.0.2.{i}", long_ago)

    with DeleteLog(clean_engine) as log:
        assert await cleaner.purge_once() == {table: 10 for table in TABLES}

    # No statement deletes more than a batch; the last one finds the rest.
    assert log.rows == {table: [3, 3, 3, 1] for table in TABLES}
    assert await remaining(clean_engine, sessions_table) == {str(live.id.value)}
    assert await remaining(clean_engine, refresh_tokens_table) == {kept_token}
    assert await cleaner.purge_once() == deleted()


# The periodic task.


async def test_the_periodic_task_logs_a_failed_pass_and_runs_the_next(
    cleaner: Housekeeping,
    clean_engine: AsyncEngine,
    ann: User,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await store_session(clean_engine, ann, created_at=T0, ended_at=T0 + SECOND)
    real_purge = cleaner.purge_once
    passes: list[dict[str, int]] = []
    second_pass = asyncio.Event()

    async def flaky_purge() -> dict[str, int]:
        if not passes:
            passes.append({})
            raise OSError("database unavailable at postgresql://secret@db")
        passes.append(await real_purge())
        second_pass.set()
        return passes[-1]

    monkeypatch.setattr(cleaner, "purge_once", flaky_purge)
    caplog.set_level(logging.WARNING, logger="app.infra.db.housekeeping")
    task = asyncio.create_task(cleaner.purge_periodically(0))
    waiter = asyncio.create_task(second_pass.wait())
    # Returns when the second pass is done, or at once if the task dies.
    # The timeout only stops a hung run; nothing here depends on speed.
    await asyncio.wait({task, waiter}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    assert not task.done(), "the loop ended instead of going on"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert second_pass.is_set()
    assert passes[1] == deleted(sessions=1)
    assert await remaining(clean_engine, sessions_table) == set()
    failures = [r for r in caplog.records if r.name == "app.infra.db.housekeeping"]
    assert len(failures) == 1
    assert failures[0].levelno == logging.WARNING
    assert "OSError" in failures[0].getMessage()
    # One line: no traceback, nor the exception's text (it may name the server).
    assert failures[0].exc_info is None
    assert "secret" not in failures[0].getMessage()


# The command line.


@pytest.fixture
def migrated_sqlite(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path}/purge.db"
    command.upgrade(alembic_config(url), "head")
    return url


async def test_python_dash_m_app_cli_purge_expired_as_operators_run_it(
    migrated_sqlite: str,
) -> None:
    # The command runs on the system clock.
    now = datetime.now(UTC)
    engine = create_engine(make_settings(migrated_sqlite))
    try:
        ann = a_user("ann@example.com", "Ann", created_at=now - timedelta(days=400))
        await save(engine, ann)
        expired = await store_session(
            engine, ann, created_at=now - timedelta(days=365), lifetime=timedelta(days=30)
        )
        live = await store_session(engine, ann, created_at=now, lifetime=timedelta(days=30))
        await add_refresh_token(engine, expired, now + timedelta(days=1))
        kept_token = await add_refresh_token(engine, live, now + timedelta(days=1))
        env = {
            **os.environ,
            "ENV": "test",
            "DB_URL": migrated_sqlite,
            "JWT_SECRET_KEY": TEST_SECRET,
        }

        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "app.cli", "purge-expired"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert result.returncode == 0, result.stderr
        lines = result.stdout.strip().splitlines()
        assert sorted(lines) == sorted(
            f"{table}: {1 if table == 'sessions' else 0} deleted" for table in TABLES
        )
        assert await remaining(engine, sessions_table) == {str(live.id.value)}
        assert await remaining(engine, refresh_tokens_table) == {kept_token}
    finally:
        await engine.dispose()
