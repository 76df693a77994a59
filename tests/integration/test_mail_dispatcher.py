"""MailDispatcher against a real database: the outbox is sent once, failures
are retried with backoff until they fail for good, dispatchers sharing a
database never send a row twice, and recorded recovery requests become mail
(or nothing). Time is a FakeClock the tests move. Last, end to end over real
SMTP (aiosmtpd): a server that is down, then up."""

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.core.dtos import EmailMessage
from app.core.entities import TokenPurpose, User
from app.core.ports import EmailSender
from app.core.usecases.request_account_mail import RequestAccountMail
from app.core.usecases.send_requested_mail import SendRequestedMail
from app.core.value_objects.opaque_token import OpaqueToken
from app.infra.composition import email_sender, mail_dispatcher, recovery_limiter, recovery_policy
from app.infra.db.engine import create_engine, create_sessionmaker
from app.infra.db.mapping import utc
from app.infra.db.models import mail_requests_table, one_time_tokens_table, outbox_table
from app.infra.db.unit_of_work import SqlUserUnitOfWork
from app.infra.mail.dispatcher import MailDispatcher
from app.infra.mail.memory_sender import MemoryEmailSender
from app.infra.mail.smtp_sender import SmtpEmailSender
from tests.conftest import make_settings
from tests.integration.helpers import T0, a_message, a_user, save, uow_for
from tests.integration.test_smtp_sender import HOST, SENDER, Inbox, parsed
from tests.server_process import free_ports
from tests.unit.fakes import FakeClock

FRONTEND = "https://app.example"
MAX_ATTEMPTS = 3
BACKOFF = timedelta(seconds=30)  # the dispatcher's default first delay
LOGGER = "app.infra.mail.dispatcher"


def settings_for(database_url: str, **overrides: object) -> Settings:
    return make_settings(
        database_url, FRONTEND_URL=FRONTEND, EMAIL_MAX_ATTEMPTS=MAX_ATTEMPTS, **overrides
    )


async def queue(engine: AsyncEngine, *messages: EmailMessage, now: datetime = T0) -> None:
    async with uow_for(engine) as uow:
        for message in messages:
            await uow.outbox.add(message, now)
        await uow.commit()


async def outbox(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Every outbox row, oldest address first, times in UTC."""
    async with engine.connect() as connection:
        rows = (await connection.execute(select(outbox_table))).mappings().all()
    times = ("created_at", "next_attempt_at", "sent_at", "failed_at")
    return sorted(
        ({k: utc(v) if k in times and v is not None else v for k, v in r.items()} for r in rows),
        key=lambda r: (r["to_email"], r["created_at"]),
    )


async def the_row(engine: AsyncEngine) -> dict[str, Any]:
    (row,) = await outbox(engine)
    return row


def token_in(message: EmailMessage, page: str) -> str:
    """The token of the link in `message`, after checking the link is in both parts."""
    prefix = f"{FRONTEND}/{page}#token="
    start = message.text.index(prefix) + len(prefix)
    token = message.text[start:].split()[0]
    assert f"{prefix}{token}" in message.html
    return token


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def sender() -> MemoryEmailSender:
    return MemoryEmailSender()


@pytest.fixture
def sessionmaker(clean_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(clean_engine)


@pytest.fixture
def dispatcher(
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    sender: MemoryEmailSender,
    clock: FakeClock,
) -> MailDispatcher:
    return mail_dispatcher(settings_for(database_url), sessionmaker, sender, clock)


# Sending the outbox.


async def test_a_queued_mail_is_sent_once_and_its_body_cleared(
    clean_engine: AsyncEngine,
    dispatcher: MailDispatcher,
    sender: MemoryEmailSender,
    clock: FakeClock,
) -> None:
    message = a_message("zoe@example.com", "Reset your password")
    await queue(clean_engine, message)
    clock.advance(1.000001)

    assert await dispatcher.run_once() == 1

    assert sender.sent == [message]
    row = await the_row(clean_engine)
    assert (row["to_email"], row["to_name"], row["subject"]) == (
        "zoe@example.com",
        "Ann Ångström",
        "Reset your password",
    )
    # The link is gone from the database once the mail is out.
    assert (row["text_body"], row["html_body"]) == (None, None)
    assert (row["sent_at"], row["failed_at"], row["last_error"]) == (clock.now(), None, None)
    assert row["attempts"] == 1

    assert await dispatcher.run_once() == 0
    clock.advance(days=1)  # long past any lease or backoff
    assert await dispatcher.run_once() == 0
    assert sender.sent == [message]


async def test_nothing_queued_sends_nothing(
    dispatcher: MailDispatcher, sender: MemoryEmailSender
) -> None:
    assert await dispatcher.run_once() == 0
    assert sender.sent == []


async def test_a_mail_queued_for_later_waits_for_its_time(
    clean_engine: AsyncEngine,
    dispatcher: MailDispatcher,
    sender: MemoryEmailSender,
    clock: FakeClock,
) -> None:
    message = a_message()
    await queue(clean_engine, message, now=T0 + timedelta(seconds=10))

    assert await dispatcher.run_once() == 0
    clock.advance(10)
    assert await dispatcher.run_once() == 1
    assert sender.sent == [message]


async def test_a_failed_send_stays_pending_and_is_retried_after_the_backoff(
    clean_engine: AsyncEngine,
    dispatcher: MailDispatcher,
    sender: MemoryEmailSender,
    clock: FakeClock,
) -> None:
    message = a_message()
    await queue(clean_engine, message)
    sender.fail_next(1)

    assert await dispatcher.run_once() == 0

    assert sender.sent == []
    row = await the_row(clean_engine)
    assert (row["sent_at"], row["failed_at"]) == (None, None)
    assert row["attempts"] == 1
    assert row["last_error"] == "MemoryEmailSender: told to fail"
    assert row["next_attempt_at"] == T0 + BACKOFF
    assert (row["text_body"], row["html_body"]) == (message.text, message.html)

    clock.advance(BACKOFF.total_seconds() - 0.000001)
    assert await dispatcher.run_once() == 0  # not yet
    assert (await the_row(clean_engine))["attempts"] == 1

    clock.advance(0.000001)
    assert await dispatcher.run_once() == 1
    assert sender.sent == [message]
    row = await the_row(clean_engine)
    assert (row["attempts"], row["sent_at"], row["last_error"]) == (2, clock.now(), None)
    assert (row["text_body"], row["html_body"]) == (None, None)


async def test_the_backoff_doubles_up_to_its_maximum(
    database_url: str,
    clean_engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    sender: MemoryEmailSender,
    clock: FakeClock,
) -> None:
    policy = recovery_policy(settings_for(database_url))
    dispatcher = MailDispatcher(
        sessionmaker,
        sender,
        clock,
        lambda: SendRequestedMail(SqlUserUnitOfWork(sessionmaker), clock, policy),
        max_attempts=10,
        lease=timedelta(minutes=5),
        backoff=timedelta(seconds=10),
        max_backoff=timedelta(seconds=25),
    )
    await queue(clean_engine, a_message())
    sender.fail_next(4)

    delays = []
    for _ in range(4):
        assert await dispatcher.run_once() == 0
        due = (await the_row(clean_engine))["next_attempt_at"]
        delays.append((due - clock.now()).total_seconds())
        clock.set(due)

    assert delays == [10, 20, 25, 25]
    assert await dispatcher.run_once() == 1
    assert (await the_row(clean_engine))["attempts"] == 5


async def test_after_max_attempts_the_mail_fails_for_good_and_an_error_is_logged(
    clean_engine: AsyncEngine,
    dispatcher: MailDispatcher,
    sender: MemoryEmailSender,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await queue(clean_engine, a_message())
    sender.fail_next(MAX_ATTEMPTS)

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for attempt in range(1, MAX_ATTEMPTS + 1):
            assert await dispatcher.run_once() == 0
            row = await the_row(clean_engine)
            assert row["attempts"] == attempt
            if attempt < MAX_ATTEMPTS:
                assert row["failed_at"] is None
                clock.set(row["next_attempt_at"])

    row = await the_row(clean_engine)
    assert (row["failed_at"], row["sent_at"]) == (clock.now(), None)
    assert row["last_error"] == "MemoryEmailSender: told to fail"
    errors = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.ERROR]
    (error,) = errors
    assert str(row["id"]) in error.getMessage()
    assert f"after {MAX_ATTEMPTS} attempts" in error.getMessage()
    warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert len(warnings) == MAX_ATTEMPTS - 1

    # The sender works again, a day has passed: a failed mail stays failed.
    clock.advance(days=1)
    assert await dispatcher.run_once() == 0
    assert sender.sent == []
    assert (await the_row(clean_engine))["attempts"] == MAX_ATTEMPTS


class CrashingSender:
    """Dies in the middle of its first send, as a killed process would."""

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []
        self.crashed = False

    async def send(self, message: EmailMessage) -> None:
        if not self.crashed:
            self.crashed = True
            raise RuntimeError("killed mid-send")
        self.sent.append(message)


async def test_a_mail_whose_send_never_finished_is_sent_after_the_lease(
    database_url: str,
    clean_engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    crashing = CrashingSender()
    dispatcher = mail_dispatcher(settings_for(database_url), sessionmaker, crashing, clock)
    message = a_message()
    await queue(clean_engine, message)
    with pytest.raises(RuntimeError):
        await dispatcher.run_once()
    leased_until = (await the_row(clean_engine))["next_attempt_at"]
    assert leased_until > clock.now()

    clock.set(leased_until - timedelta(microseconds=1))
    assert await dispatcher.run_once() == 0  # perhaps still being sent: leave it
    clock.set(leased_until)
    assert await dispatcher.run_once() == 1
    assert crashing.sent == [message]
    assert (await the_row(clean_engine))["attempts"] == 2


@asynccontextmanager
async def claims_held(engine: AsyncEngine, claimants: int) -> AsyncIterator[None]:
    """On PostgreSQL, holds the outbox locked until `claimants` statements wait
    for it, so their claims then run at the same moment. (SQLite runs one
    writer at a time whatever happens.)"""
    if engine.dialect.name != "postgresql":
        yield
        return
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with engine.connect() as holder:
        await holder.execute(text("LOCK TABLE outbox IN EXCLUSIVE MODE"))
        yield
        for _ in range(500):  # a bound instead of a hang: ~5 s
            async with engine.connect() as connection:
                if await connection.scalar(waiting) >= claimants:
                    break
            await asyncio.sleep(0.01)
        else:
            pytest.fail(f"{claimants} claims never waited for the outbox")
        await holder.commit()


async def test_two_dispatchers_on_one_database_send_each_mail_once(
    database_url: str, clean_engine: AsyncEngine, clock: FakeClock
) -> None:
    count = 2 * MailDispatcher.BATCH
    await queue(clean_engine, *(a_message(f"u{n:02}@example.com") for n in range(count)))
    settings = settings_for(database_url)
    other_engine = create_engine(settings)
    senders = [MemoryEmailSender(), MemoryEmailSender()]
    dispatchers = [
        mail_dispatcher(settings, create_sessionmaker(engine), sender, clock)
        for engine, sender in zip((clean_engine, other_engine), senders, strict=True)
    ]
    try:
        async with claims_held(clean_engine, len(dispatchers)):
            rounds = [asyncio.create_task(d.run_once()) for d in dispatchers]
        first = await asyncio.gather(*rounds)
        for _ in range(count):  # whatever is left, however it was split
            if sum(await asyncio.gather(*(d.run_once() for d in dispatchers))) == 0:
                break
    finally:
        await other_engine.dispose()

    row_of = {row["to_email"]: row["id"] for row in await outbox(clean_engine)}
    deliveries = Counter(row_of[m.to] for sender in senders for m in sender.sent)
    assert deliveries == Counter({row_id: 1 for row_id in row_of.values()})
    assert len(deliveries) == count
    rows = await outbox(clean_engine)
    assert all(r["sent_at"] is not None and r["attempts"] == 1 for r in rows)
    if clean_engine.dialect.name == "postgresql":
        # Claiming at the same moment, each took a batch of its own.
        assert first == [MailDispatcher.BATCH, MailDispatcher.BATCH]


# Recorded recovery requests.


@pytest.fixture
async def users(clean_engine: AsyncEngine) -> dict[str, User]:
    people = {
        "ann": a_user("ann@example.com", "Ann"),
        "bob": a_user("bob@example.com", "Bob"),
        "dan": a_user("dan@example.com", "Dan", email_verified=True),
        "gone": a_user("gone@example.com", "Gone", is_active=False),
    }
    await save(clean_engine, *people.values())
    return people


async def request_mail(
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FakeClock,
    purpose: TokenPurpose,
    email: str,
) -> None:
    limiter = recovery_limiter(settings_for(database_url), sessionmaker, clock)
    requests = RequestAccountMail(SqlUserUnitOfWork(sessionmaker), limiter, clock)
    await requests.execute(purpose, email, "203.0.113.7")


async def stored_tokens(engine: AsyncEngine) -> set[tuple[str, str, uuid.UUID]]:
    async with engine.connect() as connection:
        rows = (await connection.execute(select(one_time_tokens_table))).all()
    return {(row.token_hash, row.purpose, row.user_id) for row in rows}


async def requests_left(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return len((await connection.execute(select(mail_requests_table))).all())


async def test_requests_become_mail_for_active_accounts_only(
    database_url: str,
    clean_engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    dispatcher: MailDispatcher,
    sender: MemoryEmailSender,
    clock: FakeClock,
    users: dict[str, User],
) -> None:
    reset, verify = TokenPurpose.PASSWORD_RESET, TokenPurpose.EMAIL_VERIFICATION
    for purpose, email in [
        (reset, "Ann@Example.com"),  # known and active: a mail
        (reset, "nobody@example.com"),  # unknown: nothing
        (reset, "gone@example.com"),  # inactive: nothing
        (verify, "dan@example.com"),  # already verified: nothing
        (verify, "bob@example.com"),  # unverified: a mail
        (reset, "ann@example.com"),  # within ann's cooldown: nothing
    ]:
        await request_mail(database_url, sessionmaker, clock, purpose, email)
    assert sender.sent == []  # recording a request sends nothing
    assert await outbox(clean_engine) == []

    assert await dispatcher.run_once() == 2

    ann_mail, bob_mail = sorted(sender.sent, key=lambda m: m.to)
    assert (ann_mail.to, ann_mail.subject) == ("ann@example.com", "Reset your password")
    assert (bob_mail.to, bob_mail.subject) == ("bob@example.com", "Confirm your email address")
    ann_token = token_in(ann_mail, "reset-password")
    bob_token = token_in(bob_mail, "verify-email")
    assert await stored_tokens(clean_engine) == {
        (OpaqueToken(ann_token).digest, reset.value, users["ann"].id.value),
        (OpaqueToken(bob_token).digest, verify.value, users["bob"].id.value),
    }
    assert await requests_left(clean_engine) == 0
    assert [r["sent_at"] for r in await outbox(clean_engine)] == [clock.now()] * 2

    assert await dispatcher.run_once() == 0
    assert len(sender.sent) == 2


# End to end over real SMTP.


class SmtpServer:
    """An aiosmtpd server on a fixed port, started and stopped on demand."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.inbox = Inbox()
        self._controller = Controller(self.inbox, hostname=HOST, port=port)
        self._running = False

    def start(self) -> None:
        self._controller.start()
        self._running = True

    def stop(self) -> None:
        if self._running:
            self._controller.stop()
            self._running = False


@pytest.fixture
async def smtp_server() -> AsyncIterator[SmtpServer]:
    server = SmtpServer(free_ports(1)[0])
    yield server
    server.stop()


async def test_a_reset_mail_waits_for_a_smtp_server_that_is_down_then_arrives(
    database_url: str,
    clean_engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FakeClock,
    users: dict[str, User],
    smtp_server: SmtpServer,
) -> None:
    settings = settings_for(
        database_url,
        EMAIL_BACKEND="smtp",
        SMTP_HOST=HOST,
        SMTP_PORT=smtp_server.port,
        SMTP_STARTTLS=False,
        SMTP_TIMEOUT_SECONDS=5,
        EMAILS_FROM_EMAIL=SENDER,
    )
    smtp: EmailSender = email_sender(settings)
    assert isinstance(smtp, SmtpEmailSender)
    dispatcher = mail_dispatcher(settings, sessionmaker, smtp, clock)
    await request_mail(
        database_url, sessionmaker, clock, TokenPurpose.PASSWORD_RESET, "ann@example.com"
    )

    # Nothing listens on the port yet.
    assert await dispatcher.run_once() == 0
    row = await the_row(clean_engine)
    assert (row["sent_at"], row["failed_at"], row["attempts"]) == (None, None, 1)
    assert "SMTPConnectError" in row["last_error"]
    assert row["next_attempt_at"] == clock.now() + BACKOFF
    assert row["text_body"] is not None

    smtp_server.start()
    assert await dispatcher.run_once() == 0  # its retry is not due yet
    assert smtp_server.inbox.received == []
    clock.advance(BACKOFF.total_seconds())
    assert await dispatcher.run_once() == 1

    (received,) = smtp_server.inbox.received
    assert received.envelope.rcpt_tos == ["ann@example.com"]
    message = parsed(received)
    assert message["Subject"] == "Reset your password"
    assert message.get_content_type() == "multipart/alternative"
    parts = [(p.get_content_type(), str(p.get_content())) for p in message.iter_parts()]
    assert [kind for kind, _ in parts] == ["text/plain", "text/html"]
    text, html = (content.replace("\r\n", "\n") for _, content in parts)
    token = token_in(EmailMessage("", None, "", text, html), "reset-password")
    assert await stored_tokens(clean_engine) == {
        (OpaqueToken(token).digest, "password_reset", users["ann"].id.value)
    }
    row = await the_row(clean_engine)
    assert (row["sent_at"], row["attempts"], row["last_error"]) == (clock.now(), 2, None)
    assert (row["text_body"], row["html_body"]) == (None, None)
