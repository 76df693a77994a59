"""SqlLoginThrottle: failure counters in the database, shared by every process."""

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.infra.db.engine import create_engine, create_sessionmaker
from app.infra.db.login_throttle import SqlLoginThrottle
from tests.conftest import make_settings

MAX_FAILURES = 3
LOCKOUT = 60
ANN = "ann@example.com"


class FakeClock:
    """Stands still until a test moves it."""

    def __init__(self, now: datetime = datetime(2026, 1, 1, tzinfo=UTC)) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


def throttle(
    engine: AsyncEngine,
    clock: FakeClock,
    max_failures: int = MAX_FAILURES,
    lockout: int = LOCKOUT,
) -> SqlLoginThrottle:
    return SqlLoginThrottle(create_sessionmaker(engine), clock, max_failures, lockout)


async def failures(engine: AsyncEngine, username: str = ANN) -> int | None:
    async with engine.connect() as connection:
        count: int | None = await connection.scalar(
            text("SELECT failures FROM login_attempts WHERE username = :u"), {"u": username}
        )
    return count


async def fail(limiter: SqlLoginThrottle, times: int, username: str = ANN) -> None:
    for _ in range(times):
        await limiter.record_failure(username)


async def test_nobody_is_locked_initially(clean_engine: AsyncEngine) -> None:
    limiter = throttle(clean_engine, FakeClock())

    assert await limiter.retry_after(ANN) is None
    assert await failures(clean_engine) is None


async def test_locks_after_max_failures_for_the_lockout(clean_engine: AsyncEngine) -> None:
    clock = FakeClock()
    limiter = throttle(clean_engine, clock)

    await fail(limiter, MAX_FAILURES - 1)
    assert await limiter.retry_after(ANN) is None
    await limiter.record_failure(ANN)

    assert await limiter.retry_after(ANN) == LOCKOUT
    clock.advance(20)
    assert await limiter.retry_after(ANN) == LOCKOUT - 20
    clock.advance(0.5)  # partial seconds round up
    assert await limiter.retry_after(ANN) == LOCKOUT - 20


async def test_the_lock_ends_when_the_lockout_passes(clean_engine: AsyncEngine) -> None:
    clock = FakeClock()
    limiter = throttle(clean_engine, clock)
    await fail(limiter, MAX_FAILURES)

    clock.advance(LOCKOUT - 0.25)
    assert await limiter.retry_after(ANN) == 1
    clock.advance(0.25)
    assert await limiter.retry_after(ANN) is None
    clock.advance(3600)
    assert await limiter.retry_after(ANN) is None

    # The next failure starts a new count rather than locking again.
    await limiter.record_failure(ANN)
    assert await limiter.retry_after(ANN) is None
    assert await failures(clean_engine) == 1


async def test_failures_spread_beyond_the_window_do_not_lock(clean_engine: AsyncEngine) -> None:
    clock = FakeClock()
    limiter = throttle(clean_engine, clock)

    for step in (0, 30, 31):  # the third failure comes 61 s after the first
        clock.advance(step)
        await limiter.record_failure(ANN)
        assert await limiter.retry_after(ANN) is None
    assert await failures(clean_engine) == 1  # the window restarted at the third

    clock.advance(10)
    await limiter.record_failure(ANN)
    assert await limiter.retry_after(ANN) is None
    clock.advance(10)
    await limiter.record_failure(ANN)  # three within the new window
    assert await limiter.retry_after(ANN) == LOCKOUT


async def test_a_window_of_exactly_the_lockout_has_expired(clean_engine: AsyncEngine) -> None:
    clock = FakeClock()
    limiter = throttle(clean_engine, clock)

    await fail(limiter, MAX_FAILURES - 1)
    clock.advance(LOCKOUT)
    await limiter.record_failure(ANN)

    assert await limiter.retry_after(ANN) is None
    assert await failures(clean_engine) == 1


async def test_reset_clears_the_count_and_the_lock(clean_engine: AsyncEngine) -> None:
    limiter = throttle(clean_engine, FakeClock())
    await fail(limiter, MAX_FAILURES)
    await fail(limiter, MAX_FAILURES, "bob@example.com")

    await limiter.reset(ANN)

    assert await limiter.retry_after(ANN) is None
    assert await failures(clean_engine) is None
    await fail(limiter, MAX_FAILURES - 1)
    assert await limiter.retry_after(ANN) is None
    # Only that username was reset.
    assert await limiter.retry_after("bob@example.com") == LOCKOUT
    await limiter.reset("nobody@example.com")  # unknown usernames are no error


async def test_usernames_are_counted_apart(clean_engine: AsyncEngine) -> None:
    limiter = throttle(clean_engine, FakeClock())

    await fail(limiter, MAX_FAILURES - 1)
    await fail(limiter, MAX_FAILURES - 1, "bob@example.com")

    assert await limiter.retry_after(ANN) is None
    assert await limiter.retry_after("bob@example.com") is None
    assert await failures(clean_engine) == MAX_FAILURES - 1


async def test_a_limit_of_one_locks_at_the_first_failure(clean_engine: AsyncEngine) -> None:
    clock = FakeClock()
    limiter = throttle(clean_engine, clock, max_failures=1)

    await limiter.record_failure(ANN)
    assert await limiter.retry_after(ANN) == LOCKOUT

    clock.advance(LOCKOUT)
    assert await limiter.retry_after(ANN) is None
    await limiter.record_failure(ANN)
    assert await limiter.retry_after(ANN) == LOCKOUT


async def test_concurrent_failures_are_all_counted(clean_engine: AsyncEngine) -> None:
    limiter = throttle(clean_engine, FakeClock(), max_failures=100)

    await asyncio.gather(*(limiter.record_failure(ANN) for _ in range(20)))

    assert await failures(clean_engine) == 20
    assert await limiter.retry_after(ANN) is None


async def test_concurrent_failures_past_the_limit_lock(clean_engine: AsyncEngine) -> None:
    limiter = throttle(clean_engine, FakeClock())

    await asyncio.gather(*(limiter.record_failure(ANN) for _ in range(20)))

    assert await failures(clean_engine) == 20
    assert await limiter.retry_after(ANN) == LOCKOUT


async def test_two_processes_share_the_count(database_url: str, clean_engine: AsyncEngine) -> None:
    # Two engines, two pools: what two app processes on one database would have.
    first_engine = create_engine(make_settings(database_url))
    second_engine = create_engine(make_settings(database_url))
    clock = FakeClock()
    try:
        first = throttle(first_engine, clock, max_failures=4)
        second = throttle(second_engine, clock, max_failures=4)

        for limiter in (first, second, first):
            await limiter.record_failure(ANN)
        assert await second.retry_after(ANN) is None
        await second.record_failure(ANN)
        assert await first.retry_after(ANN) == LOCKOUT
        assert await second.retry_after(ANN) == LOCKOUT

        await first.reset(ANN)
        assert await second.retry_after(ANN) is None
        await asyncio.gather(
            *(limiter.record_failure(ANN) for limiter in (first, second) for _ in range(10))
        )
        assert await failures(clean_engine) == 20
    finally:
        await first_engine.dispose()
        await second_engine.dispose()


# Purging counters that no longer count


async def test_purge_deletes_only_counters_whose_window_and_lock_are_over(
    clean_engine: AsyncEngine,
) -> None:
    clock = FakeClock()
    limiter = throttle(clean_engine, clock)
    await fail(limiter, MAX_FAILURES, "locked@example.com")  # locked for LOCKOUT from now
    await fail(limiter, 1, "old@example.com")
    clock.advance(LOCKOUT - 1)
    await fail(limiter, 1, "recent@example.com")

    assert await limiter.purge_expired() == 0  # every window still open
    clock.advance(1)
    assert await limiter.purge_expired() == 2  # old's window and locked's lock just ended
    assert await failures(clean_engine, "old@example.com") is None
    assert await failures(clean_engine, "locked@example.com") is None
    assert await failures(clean_engine, "recent@example.com") == 1
    assert await limiter.retry_after("locked@example.com") is None


async def test_a_failure_after_a_purge_starts_a_new_window(clean_engine: AsyncEngine) -> None:
    clock = FakeClock()
    limiter = throttle(clean_engine, clock)
    await fail(limiter, MAX_FAILURES - 1)
    clock.advance(LOCKOUT)
    await limiter.purge_expired()
    await fail(limiter, 1)
    assert await failures(clean_engine) == 1
    assert await limiter.retry_after(ANN) is None


async def test_purging_runs_periodically_and_survives_failures(clean_engine: AsyncEngine) -> None:
    limiter = throttle(clean_engine, FakeClock())
    calls = 0
    third_purge = asyncio.Event()

    async def flaky_purge() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("database unavailable")
        if calls == 3:
            third_purge.set()
        return 0

    limiter.purge_expired = flaky_purge  # type: ignore[method-assign]
    task = asyncio.create_task(limiter.purge_periodically(0.01))
    try:
        # The first purge failed; the loop went on.
        await asyncio.wait_for(third_purge.wait(), 5)
    finally:
        task.cancel()
