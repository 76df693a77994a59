"""Deletes rows that no longer mean anything, in bounded batches, so the
tables stay proportional to live data (API.md "Housekeeping")."""

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import ColumnElement, Table, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.ports import Clock
from app.infra.db.engine import rows_changed
from app.infra.db.mapping import utc
from app.infra.db.models import (
    mail_cooldowns_table,
    one_time_tokens_table,
    outbox_table,
    refresh_tokens_table,
    request_counters_table,
    sessions_table,
)

log = logging.getLogger(__name__)

SENT_MAIL_KEPT = timedelta(days=7)


class Housekeeping:
    """One pass deletes, table by table, batch by batch (`batch_size` rows per
    statement and transaction, so no lock is held long): sessions ended or
    past their absolute limit (their refresh tokens go with them), expired
    refresh tokens of live sessions, expired one-time tokens, sent outbox rows
    older than a week, cooldowns and request counters whose time is over.
    Failed outbox rows are kept for the operator. Login counters are purged
    by the login throttle itself."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        batch_size: int,
        cooldown: timedelta,
        counter_window: timedelta,
    ) -> None:
        self._sessionmaker, self._clock, self._batch = sessionmaker, clock, batch_size
        self._cooldown, self._counter_window = cooldown, counter_window

    async def purge_once(self) -> dict[str, int]:
        """Rows deleted per table."""
        now = self._clock.now()
        s, r, o = sessions_table.c, refresh_tokens_table.c, one_time_tokens_table.c
        m, c = outbox_table.c, request_counters_table.c
        doomed: list[tuple[Table, ColumnElement[bool]]] = [
            (sessions_table, or_(s.ended_at.is_not(None), s.expires_at <= utc(now))),
            (refresh_tokens_table, r.expires_at <= utc(now)),
            (one_time_tokens_table, o.expires_at <= utc(now)),
            (outbox_table, m.sent_at <= utc(now - SENT_MAIL_KEPT)),
            (mail_cooldowns_table, mail_cooldowns_table.c.sent_at <= utc(now - self._cooldown)),
            (
                request_counters_table,
                c.window_started_at <= (now - self._counter_window).timestamp(),
            ),
        ]
        return {table.name: await self._purge(table, where) for table, where in doomed}

    async def purge_periodically(self, every_seconds: float) -> None:
        """Runs until cancelled; a failed pass (say the database is down) is
        logged in one line and tried again next time."""
        while True:
            await asyncio.sleep(every_seconds)
            try:
                await self.purge_once()
            except Exception as exc:
                log.warning("housekeeping failed: %s", type(exc).__name__)

    async def _purge(self, table: Table, where: ColumnElement[bool]) -> int:
        key = next(iter(table.primary_key.columns))
        total = 0
        while True:
            batch = select(key).where(where).limit(self._batch).scalar_subquery()
            async with self._sessionmaker() as session:
                result = await session.execute(delete(table).where(key.in_(batch)))
                await session.commit()
            deleted = rows_changed(result)
            total += deleted
            if deleted < self._batch:
                return total
