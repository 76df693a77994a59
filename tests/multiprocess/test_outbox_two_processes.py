"""The outbox across two real server processes on one PostgreSQL database,
sent through the smtp backend to one real SMTP server (aiosmtpd) in this
process.

What two dispatchers in one process (tests/integration/test_mail_dispatcher.py)
cannot show: the dispatcher each server's lifespan starts, polling on its
own, takes recorded requests and claims outbox rows the other process does
not, so each mail arrives once. The servers are real `uvicorn` subprocesses,
so they do not count towards coverage.
"""

import asyncio
import email.message
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.value_objects.opaque_token import OpaqueToken
from app.main import MAIL_POLL_SECONDS
from tests import server_process
from tests.integration.test_mail_dispatcher import FRONTEND, token_in
from tests.integration.test_smtp_sender import HOST, SENDER, Inbox, as_sent, parsed, smtp_server
from tests.server_process import ServerProcess

PASSWORD = "correct-horse-battery"
USERS = 40  # two mails each: four of the dispatcher's batches
REQUEST_TIMEOUT_SECONDS = 60.0
DELIVERY_DEADLINE_SECONDS = 60.0
WAITING = (
    "SELECT (SELECT count(*) FROM outbox WHERE sent_at IS NULL)"
    " + (SELECT count(*) FROM mail_requests)"
)
TOKENS = "SELECT token_hash, purpose, email FROM one_time_tokens"
# The mails, by subject: the page their link opens and their token's purpose.
KINDS = {
    "Confirm your email address": ("verify-email", "email_verification"),
    "Reset your password": ("reset-password", "password_reset"),
}


@pytest.fixture(scope="module")
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture(scope="module")
def smtp_port(inbox: Inbox) -> Iterator[int]:
    with smtp_server(inbox) as port:
        yield port


@pytest.fixture(scope="module")
def servers(
    postgres_url: str, smtp_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServerProcess]]:
    """Two server processes on the same database, sending to the one SMTP server."""
    env = server_process.app_env(
        postgres_url,
        DB_POOL_SIZE="5",
        EMAIL_BACKEND="smtp",
        SMTP_HOST=HOST,
        SMTP_PORT=str(smtp_port),
        SMTP_STARTTLS="false",  # plain SMTP, no AUTH: ENV=test allows it
        EMAILS_FROM_EMAIL=SENDER,
        FRONTEND_URL=FRONTEND,
        # Every request comes from 127.0.0.1: the whole burst is within the limit.
        RECOVERY_REQUESTS_PER_HOUR=str(USERS),
        # No cooldown to drop a second mail to an address: a request taken
        # twice would show as a second reset mail.
        RECOVERY_EMAIL_COOLDOWN_SECONDS="0",
    )
    yield from server_process.serve(env, tmp_path_factory.mktemp("outbox"))


@pytest.fixture
async def clients(
    servers: list[ServerProcess], clean_engine: AsyncEngine, inbox: Inbox
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One client per server, over emptied tables and an empty inbox."""
    inbox.received.clear()
    async with server_process.clients_of(servers, REQUEST_TIMEOUT_SECONDS) as clients:
        yield clients


async def scalar(engine: AsyncEngine, sql: str) -> int:
    async with engine.connect() as connection:
        value: int = (await connection.execute(text(sql))).scalar_one()
    return value


async def until_all_sent(engine: AsyncEngine, inbox: Inbox, expected: int) -> None:
    """Returns once the SMTP server has `expected` mails and no outbox row or
    recorded request waits; fails the test if the deadline passes first."""
    deadline = time.monotonic() + DELIVERY_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if len(inbox.received) >= expected and await scalar(engine, WAITING) == 0:
            return
        await asyncio.sleep(0.1)
    pytest.fail(
        f"{len(inbox.received)} of {expected} mails arrived; "
        f"{await scalar(engine, WAITING)} outbox rows or requests still wait",
        pytrace=False,
    )


def sending_pid(message: email.message.EmailMessage) -> int:
    """The process that composed `message`: the standard library's make_msgid
    writes its pid second in the Message-ID (<time.pid.random@domain>)."""
    return int(message["Message-ID"].strip("<>").split(".")[1])


async def test_each_mail_is_sent_once_though_both_processes_dispatch(
    clients: list[httpx.AsyncClient],
    clean_engine: AsyncEngine,
    inbox: Inbox,
    servers: list[ServerProcess],
) -> None:
    emails = [f"user{n:02}@example.com" for n in range(USERS)]
    # Each registration queues a verification mail; each request, recorded on
    # the other process, becomes a reset mail in a dispatcher's round.
    registered = await asyncio.gather(
        *(
            clients[n % 2].post("/users", json={"name": "Ann", "email": e, "password": PASSWORD})
            for n, e in enumerate(emails)
        )
    )
    assert [r.status_code for r in registered] == [201] * USERS, [r.text for r in registered]
    requested = await asyncio.gather(
        *(
            clients[(n + 1) % 2].post("/auth/password/forgot", json={"email": e})
            for n, e in enumerate(emails)
        )
    )
    assert [r.status_code for r in requested] == [202] * USERS, [r.text for r in requested]

    await until_all_sent(clean_engine, inbox, 2 * USERS)
    # Both dispatchers poll again at least once: nothing more goes out.
    await asyncio.sleep(2 * MAIL_POLL_SECONDS)

    mails = [as_sent(received) for received in inbox.received]
    expected = Counter({(e, subject): 1 for e in emails for subject in KINDS})
    assert Counter((mail.to, mail.subject) for mail in mails) == expected
    message_ids = [parsed(received)["Message-ID"] for received in inbox.received]
    assert len(set(message_ids)) == len(message_ids) == 2 * USERS
    # Each mail carries the one token issued for its recipient and purpose.
    mailed = set()
    for mail in mails:
        page, purpose = KINDS[mail.subject]
        mailed.add((OpaqueToken(token_in(mail, page)).digest, purpose, mail.to))
    async with clean_engine.connect() as connection:
        tokens = await connection.execute(text(TOKENS))
        issued = {tuple(row) for row in tokens}
        rows = (
            await connection.execute(text("SELECT attempts, sent_at, failed_at FROM outbox"))
        ).all()
    assert mailed == issued
    # Each row was claimed once, by one process, and sent at that attempt.
    assert len(rows) == 2 * USERS
    assert {(row.attempts, row.sent_at is not None, row.failed_at) for row in rows} == {
        (1, True, None)
    }

    # Which process sent how many depends on when each polled: shown, not asserted.
    by_process = Counter(sending_pid(parsed(received)) for received in inbox.received)
    print({server.base_url: by_process[server.process.pid] for server in servers})
