import math

from sqlalchemy import case
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.ports import Clock
from app.infra.db.models import request_counters_table

_T = request_counters_table.c


class SqlRequestLimiter:
    """At most `limit` requests per key in each fixed window of `window_seconds`,
    counted by one upsert that `RETURNING`s the count, so every process and
    machine shares the count. Keys are prefixed, so limiters can share the
    table."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        prefix: str,
        limit: int,
        window_seconds: int,
    ) -> None:
        self._sessionmaker, self._clock = sessionmaker, clock
        self._prefix, self._limit, self._window = prefix, limit, window_seconds

    async def hit(self, key: str) -> int | None:
        now = self._clock.now().timestamp()
        async with self._sessionmaker() as session:
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            statement = insert(request_counters_table).values(
                key=f"{self._prefix}{key}"[:100], count=1, window_started_at=now
            )
            new_window = _T.window_started_at <= now - self._window
            upsert = statement.on_conflict_do_update(
                index_elements=[_T.key],
                set_={
                    "count": case((new_window, 1), else_=_T.count + 1),
                    "window_started_at": case((new_window, now), else_=_T.window_started_at),
                },
            ).returning(_T.count, _T.window_started_at)
            count, started = (await session.execute(upsert)).one()
            await session.commit()
        if count <= self._limit:
            return None
        return max(1, math.ceil(float(started) + self._window - now))
