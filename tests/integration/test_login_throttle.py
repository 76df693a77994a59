"""The LoginThrottle rule, run alike against the in-memory fake and the SQL
adapter on SQLite and PostgreSQL; then what only the adapter has (rows,
purging, several processes, attempts arriving at once)."""

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.exceptions import HashingBusy
from app.core.ports import LoginThrottle
from app.infra.db.engine import create_engine, create_sessionmaker
from app.infra.db.login_throttle import SqlLoginThrottle
from tests.conftest import make_settings, truncate
from tests.unit.fakes import FakeClock, FakeThrottle

MAX = 3
LOCKOUT = 60
ANN, BOB = "ann@example.com", "bob@example.com"

MakeThrottle = Callable[..., LoginThrottle]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 1, 1, tzinfo=UTC))


@pytest.fixture(params=["fake", "sqlite", "postgres"])
def implementation(request: pytest.FixtureRequest) -> str | None:
    """None for the fake, else the URL of a migrated database."""
    if request.param == "fake":
        return None
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
async def make(implementation: str | None, clock: FakeClock) -> AsyncIterator[MakeThrottle]:
    """Builds throttles of one implementation: `make(max_failures=, lockout=)`."""
    if implementation is None:
        yield lambda max_failures=MAX, lockout=LOCKOUT: FakeThrottle(clock, max_failures, lockout)
        return
    url = implementation
    engine = create_engine(make_settings(url))
    await truncate(engine)
    sessionmaker = create_sessionmaker(engine)
    yield lambda max_failures=MAX, lockout=LOCKOUT: SqlLoginThrottle(
        sessionmaker, clock, max_failures, lockout
    )
    await engine.dispose()


async def attempts(throttle: LoginThrottle, times: int, username: str = ANN) -> list[int | None]:
    return [await throttle.reserve(username) for _ in range(times)]


# The rule (app/core/ports/login_throttle.py), for every implementation


async def test_the_first_attempts_up_to_the_limit_are_allowed(make: MakeThrottle) -> None:
    assert await attempts(make(), MAX) == [None] * MAX


async def test_the_limit_locks_for_the_lockout_from_the_last_attempt(
    make: MakeThrottle, clock: FakeClock
) -> None:
    throttle = make()
    await attempts(throttle, MAX - 1)
    clock.advance(10)
    assert await throttle.reserve(ANN) is None  # the M-th is checked, and locks

    assert await throttle.reserve(ANN) == LOCKOUT
    clock.advance(20)
    assert await throttle.reserve(ANN) == LOCKOUT - 20
    clock.advance(0.5)  # partial seconds round up
    assert await throttle.reserve(ANN) == LOCKOUT - 20


async def test_refused_attempts_do_not_extend_the_lock(
    make: MakeThrottle, clock: FakeClock
) -> None:
    throttle = make()
    await attempts(throttle, MAX)
    for _ in range(5):
        clock.advance(LOCKOUT / 10)
        await throttle.reserve(ANN)
    clock.advance(LOCKOUT / 2 - 0.25)
    assert await throttle.reserve(ANN) == 1  # never 0
    clock.advance(0.25)
    assert await throttle.reserve(ANN) is None


async def test_the_window_is_fixed_from_its_first_attempt(
    make: MakeThrottle, clock: FakeClock
) -> None:
    # At 0, 50 and 59 s with 3 per 60 s: locked until 119 s (a sliding window
    # would unlock at 60 s, one second later).
    throttle = make()
    for moment in (0, 50, 9):
        clock.advance(moment)
        assert await throttle.reserve(ANN) is None
    assert await throttle.reserve(ANN) == LOCKOUT


async def test_attempts_spread_beyond_the_window_do_not_lock(
    make: MakeThrottle, clock: FakeClock
) -> None:
    throttle = make()
    for step in (0, 30, 30):  # the third comes as the first window ends
        clock.advance(step)
        assert await throttle.reserve(ANN) is None
    clock.advance(10)
    assert await throttle.reserve(ANN) is None
    clock.advance(10)
    assert await throttle.reserve(ANN) is None  # three within the window opened at 60 s
    assert await throttle.reserve(ANN) == LOCKOUT


async def test_after_the_lock_a_new_window_opens(make: MakeThrottle, clock: FakeClock) -> None:
    throttle = make()
    await attempts(throttle, MAX + 2)
    clock.advance(LOCKOUT)
    assert await attempts(throttle, MAX) == [None] * MAX
    assert await throttle.reserve(ANN) == LOCKOUT


async def test_reset_forgets_the_count_and_lifts_the_lock(make: MakeThrottle) -> None:
    throttle = make()
    await attempts(throttle, MAX + 1)
    await attempts(throttle, MAX, BOB)

    await throttle.reset(ANN)

    assert await attempts(throttle, MAX) == [None] * MAX
    assert await throttle.reserve(BOB) == LOCKOUT  # only that username was reset
    await throttle.reset("nobody@example.com")  # unknown usernames are no error


async def test_release_gives_an_unchecked_attempt_back(make: MakeThrottle) -> None:
    throttle = make()
    await attempts(throttle, MAX)  # the last one locked
    await throttle.release(ANN)  # ... but was never checked

    assert await throttle.reserve(ANN) is None
    assert await throttle.reserve(ANN) == LOCKOUT
    await throttle.release("nobody@example.com")  # nothing to give back is no error


async def test_usernames_are_counted_apart(make: MakeThrottle) -> None:
    throttle = make()
    await attempts(throttle, MAX - 1)
    await attempts(throttle, MAX - 1, BOB)
    assert await throttle.reserve(ANN) is None
    assert await throttle.reserve(BOB) is None


async def test_a_limit_of_one_checks_one_attempt_per_window(
    make: MakeThrottle, clock: FakeClock
) -> None:
    throttle = make(max_failures=1)
    assert await throttle.reserve(ANN) is None
    assert await throttle.reserve(ANN) == LOCKOUT
    clock.advance(LOCKOUT)
    assert await throttle.reserve(ANN) is None
    assert await throttle.reserve(ANN) == LOCKOUT


async def test_a_burst_at_once_allows_exactly_the_limit(make: MakeThrottle) -> None:
    throttle = make()
    results = await asyncio.gather(*(throttle.reserve(ANN) for _ in range(50)))
    assert results.count(None) == MAX
    assert all(r == LOCKOUT for r in results if r is not None)


async def test_attempts_for_one_username_run_one_at_a_time(make: MakeThrottle) -> None:
    throttle, inside, most = make(), 0, 0

    async def attempt(username: str) -> None:
        nonlocal inside, most
        async with throttle.one_at_a_time(username):
            inside += 1
            most = max(most, inside)
            await throttle.reserve(username)  # a real await: others run meanwhile
            await asyncio.sleep(0)
            inside -= 1

    await asyncio.gather(*(attempt(ANN) for _ in range(5)))
    assert most == 1
    await asyncio.gather(*(attempt(f"user{n}@example.com") for n in range(5)))
    assert most > 1  # other usernames do not wait


# The SQL adapter only


@pytest.fixture
def sql_throttle(clean_engine: AsyncEngine, clock: FakeClock) -> SqlLoginThrottle:
    return SqlLoginThrottle(create_sessionmaker(clean_engine), clock, MAX, LOCKOUT)


async def counted(engine: AsyncEngine, username: str = ANN) -> int | None:
    async with engine.connect() as connection:
        count: int | None = await connection.scalar(
            text("SELECT failures FROM login_attempts WHERE username = :u"), {"u": username}
        )
    return count


async def test_a_turn_not_given_in_time_is_hashing_busy(
    clean_engine: AsyncEngine, clock: FakeClock
) -> None:
    throttle = SqlLoginThrottle(
        create_sessionmaker(clean_engine), clock, MAX, LOCKOUT, turn_timeout=0.01
    )
    async with throttle.one_at_a_time(ANN):
        with pytest.raises(HashingBusy):
            async with throttle.one_at_a_time(ANN):
                pytest.fail("two attempts for one username at once")
    assert await counted(clean_engine) is None  # nothing was counted


async def test_a_reset_deletes_the_row(
    sql_throttle: SqlLoginThrottle, clean_engine: AsyncEngine
) -> None:
    await attempts(sql_throttle, 2)
    assert await counted(clean_engine) == 2
    await sql_throttle.reset(ANN)
    assert await counted(clean_engine) is None


async def test_two_processes_check_at_most_the_limit_together(
    database_url: str, clean_engine: AsyncEngine, clock: FakeClock
) -> None:
    # Two engines, two pools: what two app processes on one database have.
    engines = [create_engine(make_settings(database_url)) for _ in range(2)]
    try:
        first, second = (
            SqlLoginThrottle(create_sessionmaker(e), clock, MAX, LOCKOUT) for e in engines
        )
        results = await asyncio.gather(
            *(throttle.reserve(ANN) for _ in range(25) for throttle in (first, second))
        )
        assert results.count(None) == MAX
        assert await counted(clean_engine) == 50

        await first.reset(ANN)
        assert await second.reserve(ANN) is None
    finally:
        for engine in engines:
            await engine.dispose()


async def test_purge_deletes_only_counters_whose_window_and_lock_are_over(
    sql_throttle: SqlLoginThrottle, clean_engine: AsyncEngine, clock: FakeClock
) -> None:
    await attempts(sql_throttle, MAX, "locked@example.com")  # locked for LOCKOUT from now
    await attempts(sql_throttle, 1, "old@example.com")
    clock.advance(LOCKOUT - 1)
    await attempts(sql_throttle, 1, "recent@example.com")

    assert await sql_throttle.purge_expired() == 0  # every window still open
    clock.advance(1)
    assert await sql_throttle.purge_expired() == 2  # old's window and locked's lock just ended
    assert await counted(clean_engine, "old@example.com") is None
    assert await counted(clean_engine, "locked@example.com") is None
    assert await counted(clean_engine, "recent@example.com") == 1
    assert await sql_throttle.reserve("locked@example.com") is None


async def test_an_attempt_after_a_purge_opens_a_new_window(
    sql_throttle: SqlLoginThrottle, clean_engine: AsyncEngine, clock: FakeClock
) -> None:
    await attempts(sql_throttle, MAX - 1)
    clock.advance(LOCKOUT)
    await sql_throttle.purge_expired()
    await attempts(sql_throttle, 1)
    assert await counted(clean_engine) == 1


async def test_purging_runs_periodically_and_survives_failures(
    sql_throttle: SqlLoginThrottle,
) -> None:
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

    sql_throttle.purge_expired = flaky_purge  # type: ignore[method-assign]
    task = asyncio.create_task(sql_throttle.purge_periodically(0.01))
    try:
        # The first purge failed; the loop went on.
        await asyncio.wait_for(third_purge.wait(), 5)
    finally:
        task.cancel()
