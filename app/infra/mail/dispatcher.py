import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.dtos import EmailMessage
from app.core.exceptions import EmailNotSent
from app.core.ports import Clock, EmailSender
from app.core.usecases.send_requested_mail import SendRequestedMail
from app.infra.db.engine import read_only
from app.infra.db.mapping import utc
from app.infra.db.models import outbox_table

log = logging.getLogger(__name__)
_O = outbox_table.c


class MailDispatcher:
    """Sends the outbox, at least once per row, from every server process.

    Each round first turns recorded recovery requests into mail
    (SendRequestedMail), then claims due rows: one statement moves their next
    attempt a lease ahead and counts the attempt, on rows locked with SKIP
    LOCKED, so processes sharing a PostgreSQL claim different rows. Sending
    happens outside any transaction. A sent row keeps its metadata and loses
    its body (the link); a failed send is retried with exponential backoff,
    and after `max_attempts` the row is marked failed and logged. A process
    that dies mid-send leaves its rows to be claimed again when the lease
    ends: a mail may then go out twice, never zero times.
    """

    BATCH = 20
    REQUESTS_PER_ROUND = 100

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        sender: EmailSender,
        clock: Clock,
        send_requested: Callable[[], SendRequestedMail],
        *,
        max_attempts: int,
        lease: timedelta,
        backoff: timedelta = timedelta(seconds=30),
        max_backoff: timedelta = timedelta(hours=1),
    ) -> None:
        self._sessionmaker, self._sender, self._clock = sessionmaker, sender, clock
        self._send_requested = send_requested
        self._max_attempts, self._lease = max_attempts, lease
        self._backoff, self._max_backoff = backoff, max_backoff

    async def run_once(self) -> int:
        """One round; returns how many mails were handed to the server."""
        for _ in range(self.REQUESTS_PER_ROUND):
            if not await self._send_requested().execute():
                break
        sent = 0
        for row in await self._claim():
            sent += await self._deliver(row)
        return sent

    async def run_forever(self, every_seconds: float) -> None:
        """Runs until cancelled; a failed round (the database is down, say) is
        tried again at the next, with one warning when the failures start and
        one when they end."""
        failing = False  # one warning per outage, not one per round
        while True:
            try:
                while await self.run_once() >= self.BATCH:
                    pass  # a backlog: go on at once
                if failing:
                    log.warning("mail dispatch works again")
                failing = False
            except Exception as exc:
                if not failing:
                    log.warning("mail dispatch failed, retrying quietly: %s", type(exc).__name__)
                failing = True
            await asyncio.sleep(every_seconds)

    async def backlog(self) -> tuple[int, int]:
        """(pending, failed): mail still to be sent, and mail given up on."""
        pending = func.count().filter(_O.sent_at.is_(None), _O.failed_at.is_(None))
        failed = func.count().filter(_O.failed_at.is_not(None))
        # A read: no transaction (PostgreSQL), no write lock (SQLite).
        async with read_only(self._sessionmaker.kw["bind"]).connect() as connection:
            row = (await connection.execute(select(pending, failed))).one()
        return int(row[0]), int(row[1])

    async def _claim(self) -> list[Any]:
        now = self._clock.now()
        due = (
            select(_O.id)
            .where(_O.sent_at.is_(None), _O.failed_at.is_(None), _O.next_attempt_at <= utc(now))
            .order_by(_O.next_attempt_at)
            .limit(self.BATCH)
            .with_for_update(skip_locked=True)
        )
        claim = (
            update(outbox_table)
            .where(_O.id.in_(due.scalar_subquery()))
            .values(next_attempt_at=utc(now + self._lease), attempts=_O.attempts + 1)
            .returning(*outbox_table.c)
        )
        async with self._sessionmaker() as session:
            rows = list((await session.execute(claim)).all())
            await session.commit()
        return rows

    async def _deliver(self, row: Any) -> int:
        message = EmailMessage(
            to=row.to_email,
            to_name=row.to_name,
            subject=row.subject,
            text=row.text_body or "",
            html=row.html_body or "",
        )
        try:
            await self._sender.send(message)
        except EmailNotSent as exc:
            await self._failed(row.id, row.attempts, str(exc))
            return 0
        await self._update(
            row.id, sent_at=utc(self._clock.now()), text_body=None, html_body=None, last_error=None
        )
        return 1

    async def _failed(self, row_id: uuid.UUID, attempts: int, reason: str) -> None:
        now = self._clock.now()
        if attempts >= self._max_attempts:
            log.error("mail %s not sent after %d attempts: %s", row_id, attempts, reason)
            await self._update(row_id, failed_at=utc(now), last_error=reason[:200])
            return
        delay = min(self._backoff * 2 ** (attempts - 1), self._max_backoff)
        log.warning(
            "mail %s not sent (attempt %d), retry in %ss: %s",
            row_id,
            attempts,
            int(delay.total_seconds()),
            reason,
        )
        await self._update(row_id, next_attempt_at=utc(now + delay), last_error=reason[:200])

    async def _update(self, row_id: uuid.UUID, **values: Any) -> None:
        async with self._sessionmaker() as session:
            await session.execute(update(outbox_table).where(_O.id == row_id).values(**values))
            await session.commit()
