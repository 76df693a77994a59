import asyncio
import logging
import math

from sqlalchemy import case, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.ports import Clock
from app.infra.db.models import LoginAttemptRow

_T = LoginAttemptRow.__table__.c  # type: ignore[attr-defined]
log = logging.getLogger(__name__)


class SqlLoginThrottle:
    """Failure counters in their own table, changed by single atomic upserts, so
    every process and machine sharing the database counts the same failures."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        max_failures: int,
        lockout_seconds: int,
    ) -> None:
        self._sessionmaker, self._clock = sessionmaker, clock
        self._max_failures, self._lockout = max_failures, lockout_seconds

    async def retry_after(self, username: str) -> int | None:
        async with self._sessionmaker() as session:
            locked_until = await session.scalar(
                select(_T.locked_until).where(_T.username == username)
            )
        now = self._clock.now().timestamp()
        if locked_until is None or locked_until <= now:
            return None
        return math.ceil(float(locked_until) - now)

    async def record_failure(self, username: str) -> None:
        now = self._clock.now().timestamp()
        async with self._sessionmaker() as session:
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            stmt = insert(LoginAttemptRow).values(
                username=username,
                failures=1,
                window_started_at=now,
                locked_until=now + self._lockout if self._max_failures <= 1 else None,
            )
            # A window older than the lockout starts afresh; reaching the
            # limit locks the username for the lockout period from now.
            expired = _T.window_started_at <= now - self._lockout
            failures = case((expired, 1), else_=_T.failures + 1)
            stmt = stmt.on_conflict_do_update(
                index_elements=[_T.username],
                set_={
                    "failures": failures,
                    "window_started_at": case((expired, now), else_=_T.window_started_at),
                    "locked_until": case(
                        (failures >= self._max_failures, now + self._lockout), else_=None
                    ),
                },
            )
            await session.execute(stmt)
            await session.commit()

    async def reset(self, username: str) -> None:
        async with self._sessionmaker() as session:
            await session.execute(delete(LoginAttemptRow).where(_T.username == username))
            await session.commit()

    async def purge_expired(self) -> int:
        """Deletes counters that no longer count: window over and no lock. A
        failure after that starts a new window anyway, so nothing changes but
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
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def purge_periodically(self, every_seconds: float) -> None:
        """Runs until cancelled; a failed purge (say the database is down) is
        logged and tried again next time."""
        while True:
            await asyncio.sleep(every_seconds)
            try:
                await self.purge_expired()
            except Exception as exc:
                log.warning("login_attempts purge failed: %s", type(exc).__name__)
