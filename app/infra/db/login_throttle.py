import asyncio
import logging
import math
from contextlib import AbstractAsyncContextManager

from sqlalchemy import case, delete, func, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.exceptions import HashingBusy
from app.core.ports import Clock
from app.infra.db.engine import rows_changed
from app.infra.db.models import LoginAttemptRow, login_attempts_table
from app.infra.keyed_lock import KeyedLock

_T = login_attempts_table.c
log = logging.getLogger(__name__)


class SqlLoginThrottle:
    """The LoginThrottle rule on a table of counters, one row per username.

    `reserve` is a single upsert that counts the attempt and decides it
    (`RETURNING` the count and the lock), so the decision is made where the
    count is written: concurrent attempts on any number of processes are
    serialised by the row, never by a value read earlier. Times are epoch
    seconds, which keeps the SQL portable.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        max_failures: int,
        lockout_seconds: int,
        turn_timeout: float | None = None,
    ) -> None:
        self._sessionmaker, self._clock = sessionmaker, clock
        self._max_failures, self._lockout = max_failures, lockout_seconds
        # An attempt waits its turn as it would wait for a hashing thread:
        # at most `turn_timeout` seconds, then 503 like a full hashing queue.
        self._in_flight = KeyedLock(turn_timeout, busy=HashingBusy)

    def one_at_a_time(self, username: str) -> AbstractAsyncContextManager[None]:
        return self._in_flight.hold(username)

    async def reserve(self, username: str) -> int | None:
        now = self._clock.now().timestamp()
        lock_from_now = now + self._lockout
        async with self._sessionmaker() as session:
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            stmt = insert(LoginAttemptRow).values(
                username=username,
                failures=1,
                window_started_at=now,
                locked_until=lock_from_now if self._max_failures <= 1 else None,
            )
            # Every expression below sees the row as it was before this attempt.
            locked = func.coalesce(_T.locked_until, 0) > now
            new_window = (_T.window_started_at <= now - self._lockout) & ~locked
            # Refused attempts are counted too (past the limit), so the count
            # returned tells this attempt's fate without reading the old row.
            failures = case((new_window, 1), else_=_T.failures + 1)
            upsert = stmt.on_conflict_do_update(
                index_elements=[_T.username],
                set_={
                    "failures": failures,
                    "window_started_at": case((new_window, now), else_=_T.window_started_at),
                    "locked_until": case(
                        (locked, _T.locked_until),
                        (failures >= self._max_failures, lock_from_now),
                        else_=None,
                    ),
                },
            ).returning(_T.failures, _T.locked_until)
            count, locked_until = (await session.execute(upsert)).one()
            await session.commit()
        if count <= self._max_failures:
            return None
        return max(1, math.ceil(float(locked_until) - now))

    async def release(self, username: str) -> None:
        async with self._sessionmaker() as session:
            await session.execute(
                update(LoginAttemptRow)
                .where(_T.username == username, _T.failures > 0)
                .values(
                    failures=_T.failures - 1,
                    # The attempt that set the lock is given back: no lock.
                    locked_until=case(
                        (_T.failures <= self._max_failures, None), else_=_T.locked_until
                    ),
                )
            )
            await session.commit()

    async def reset(self, username: str) -> None:
        async with self._sessionmaker() as session:
            await session.execute(delete(LoginAttemptRow).where(_T.username == username))
            await session.commit()

    async def purge_expired(self) -> int:
        """Deletes counters that no longer count: window over and no lock. An
        attempt after that opens a new window anyway, so nothing changes but
        the table's size (a password spray leaves a row per username)."""
        now = self._clock.now().timestamp()
        async with self._sessionmaker() as session:
            result = await session.execute(
                delete(LoginAttemptRow).where(
                    _T.window_started_at <= now - self._lockout,
                    or_(_T.locked_until.is_(None), _T.locked_until <= now),
                )
            )
            await session.commit()
        return rows_changed(result)

    async def purge_periodically(self, every_seconds: float) -> None:
        """Runs until cancelled; a failed purge (say the database is down) is
        logged and tried again next time."""
        while True:
            await asyncio.sleep(every_seconds)
            try:
                await self.purge_expired()
            except Exception as exc:
                log.warning("login_attempts purge failed: %s", type(exc).__name__)
