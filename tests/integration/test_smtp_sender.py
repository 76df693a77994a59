"""The EmailSender rule, run alike against the memory fake and the SMTP
adapter talking to a real SMTP server (aiosmtpd) in this process; then what
only SMTP has: STARTTLS with AUTH, implicit TLS, certificates, timeouts and
refusals. Certificates come from a throwaway CA (trustme)."""

import asyncio
import email.message
import email.policy
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.headerregistry import Address
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from app.core.dtos import EmailMessage
from app.core.exceptions import EmailNotSent
from app.core.ports import EmailSender
from app.infra.mail.memory_sender import MemoryEmailSender
from app.infra.mail.smtp_sender import SmtpEmailSender
from tests.server_process import free_ports

HOST = "127.0.0.1"
USER, PASSWORD = "mailer", "smtp-pass-Q7x!"
SENDER = "no-reply@users.example"
LINK = "https://app.example/reset#token=tok-3f9a1c"
MESSAGE = EmailMessage(
    to="zoe@example.com",
    to_name="Zoë Ångström",
    subject="Reset your password",
    text=f"Hello Zoë,\n\nOpen {LINK} within 30 minutes.\n",
    html=f'<p>Hello Zoë,</p>\n<p><a href="{LINK}">Reset your password</a></p>\n',
)


@dataclass
class Received:
    envelope: Envelope
    tls: bool
    login: bytes | None


class Inbox:
    """An aiosmtpd handler: keeps what it accepts, refuses recipients on demand."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.refusals = 0

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.refusals > 0:
            self.refusals -= 1
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        tls = server.transport is not None and server.transport.get_extra_info("ssl_object")
        # aiosmtpd types auth_data as None; after AUTH it holds our LoginPassword.
        login = getattr(session.auth_data, "login", None)
        self.received.append(Received(envelope, bool(tls), login))
        return "250 Message accepted for delivery"


def authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


def echoing_authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    # A careless server that repeats the password it was given.
    password = auth_data.password.decode()
    return AuthResult(success=False, handled=False, message=f"535 5.7.8 Bad password {password}")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(context)
    return context


@pytest.fixture(scope="module")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@contextmanager
def smtp_server(inbox: Inbox, **options: Any) -> Iterator[int]:
    """A real SMTP server on a free port (in a thread of its own) while in the block."""
    port = free_ports(1)[0]
    controller = Controller(inbox, hostname=HOST, port=port, **options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def smtp_sender(port: int, **options: Any) -> SmtpEmailSender:
    settings: dict[str, Any] = {"starttls": False, "ssl": False, "timeout": 5.0}
    settings.update(options)
    return SmtpEmailSender(
        host=HOST, port=port, from_email=SENDER, from_name="User Service", **settings
    )


def parsed(received: Received) -> email.message.EmailMessage:
    message = email.message_from_bytes(
        received.envelope.original_content or b"", policy=email.policy.default
    )
    assert isinstance(message, email.message.EmailMessage)
    return message


def as_sent(received: Received) -> EmailMessage:
    """What the server received, read back as the message that was sent."""
    message = parsed(received)
    (to,) = message["To"].addresses
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None
    assert html is not None
    return EmailMessage(
        to=to.addr_spec,
        to_name=to.display_name,
        subject=message["Subject"],
        # SMTP carries lines ending in CRLF.
        text=text.get_content().replace("\r\n", "\n"),
        html=html.get_content().replace("\r\n", "\n"),
    )


# The rule, on both sides ----------------------------------------------------


@dataclass
class Channel:
    sender: EmailSender
    delivered: Callable[[], list[EmailMessage]]
    fail_next: Callable[[], None]  # makes the next send fail, as an outage would


@pytest.fixture(params=["memory", "smtp"])
def channel(request: pytest.FixtureRequest) -> Iterator[Channel]:
    if request.param == "memory":
        memory = MemoryEmailSender()
        yield Channel(memory, lambda: list(memory.sent), lambda: memory.fail_next(1))
        return
    inbox = Inbox()
    with smtp_server(inbox) as port:

        def refuse_once() -> None:
            inbox.refusals = 1

        yield Channel(smtp_sender(port), lambda: [as_sent(r) for r in inbox.received], refuse_once)


async def test_a_sent_message_is_delivered_whole(channel: Channel) -> None:
    await channel.sender.send(MESSAGE)
    assert channel.delivered() == [MESSAGE]


async def test_a_failed_send_raises_delivers_nothing_and_a_retry_goes_through(
    channel: Channel,
) -> None:
    channel.fail_next()
    with pytest.raises(EmailNotSent):
        await channel.sender.send(MESSAGE)
    assert channel.delivered() == []
    await channel.sender.send(MESSAGE)
    assert channel.delivered() == [MESSAGE]


# What only SMTP has -------------------------------------------------------


async def test_plain_smtp_delivers_one_multipart_message() -> None:
    inbox = Inbox()
    with smtp_server(inbox) as port:
        await smtp_sender(port).send(MESSAGE)
    (received,) = inbox.received
    assert (received.envelope.mail_from, received.envelope.rcpt_tos) == (SENDER, [MESSAGE.to])
    assert (received.tls, received.login) == (False, None)
    message = parsed(received)
    assert message["From"].addresses == (Address("User Service", addr_spec=SENDER),)
    assert message["To"].addresses == (Address("Zoë Ångström", addr_spec=MESSAGE.to),)
    assert message["Subject"] == "Reset your password"
    assert message["Message-ID"].endswith("@users.example>")
    assert message["Date"].datetime is not None
    assert message.get_content_type() == "multipart/alternative"
    parts = [(p.get_content_type(), p.get_content()) for p in message.iter_parts()]
    assert [kind for kind, _ in parts] == ["text/plain", "text/html"]
    assert all(LINK in content for _, content in parts)


async def test_starttls_with_auth_delivers(
    server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    inbox = Inbox()
    server = {"tls_context": server_tls, "require_starttls": True, "auth_required": True}
    with smtp_server(inbox, authenticator=authenticator, **server) as port:
        sender = smtp_sender(
            port, starttls=True, tls_context=client_tls, username=USER, password=PASSWORD
        )
        await sender.send(MESSAGE)
    (received,) = inbox.received
    assert (received.tls, received.login) == (True, USER.encode())
    assert as_sent(received) == MESSAGE


async def test_a_wrong_password_is_not_sent_and_not_repeated(
    server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    inbox = Inbox()
    server = {"tls_context": server_tls, "require_starttls": True, "auth_required": True}
    wrong = "wrong-pass-Z1!"
    with smtp_server(inbox, authenticator=authenticator, **server) as port:
        sender = smtp_sender(
            port, starttls=True, tls_context=client_tls, username=USER, password=wrong
        )
        with pytest.raises(EmailNotSent, match="SMTPAuthenticationError: 535") as caught:
            await sender.send(MESSAGE)
    assert inbox.received == []
    assert wrong not in str(caught.value)
    assert caught.value.__cause__ is None  # nor in a chained exception's text
    assert caught.value.__suppress_context__


async def test_a_password_the_server_echoes_is_masked(
    server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    with smtp_server(Inbox(), authenticator=echoing_authenticator, tls_context=server_tls) as port:
        sender = smtp_sender(
            port, starttls=True, tls_context=client_tls, username=USER, password=PASSWORD
        )
        with pytest.raises(EmailNotSent, match=r"Bad password \*\*\*") as caught:
            await sender.send(MESSAGE)
    assert PASSWORD not in str(caught.value)


async def test_implicit_tls_delivers(
    server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    inbox = Inbox()
    with smtp_server(inbox, ssl_context=server_tls) as port:
        await smtp_sender(port, ssl=True, tls_context=client_tls).send(MESSAGE)
    (received,) = inbox.received
    assert received.tls
    assert as_sent(received) == MESSAGE


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
async def test_a_certificate_the_client_does_not_trust_is_refused(
    mode: str, server_tls: ssl.SSLContext
) -> None:
    inbox = Inbox()
    server = {"tls_context": server_tls} if mode == "starttls" else {"ssl_context": server_tls}
    with smtp_server(inbox, **server) as port:
        # The system's CAs only, which do not include the throwaway test CA.
        sender = smtp_sender(port, **{mode: True})
        with pytest.raises(EmailNotSent, match="certificate verify failed"):
            await sender.send(MESSAGE)
    assert inbox.received == []


async def test_starttls_required_but_not_offered_sends_nothing() -> None:
    inbox = Inbox()
    with smtp_server(inbox) as port, pytest.raises(EmailNotSent, match="STARTTLS"):
        await smtp_sender(port, starttls=True).send(MESSAGE)
    assert inbox.received == []


async def test_nothing_listening_is_not_sent() -> None:
    with pytest.raises(EmailNotSent, match="SMTPConnectError"):
        await smtp_sender(free_ports(1)[0]).send(MESSAGE)


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A server that accepts connections and never says a word."""
    writers: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(hold, HOST, 0)
    yield server.sockets[0].getsockname()[1]
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_server_that_never_answers_times_out(silent_port: int) -> None:
    # Without the timeout this would wait for ever; the bound only shows it applied.
    start = time.monotonic()
    with pytest.raises(EmailNotSent, match="Timeout"):
        await smtp_sender(silent_port, timeout=0.5).send(MESSAGE)
    assert time.monotonic() - start >= 0.4


async def test_a_refused_recipient_is_not_sent() -> None:
    inbox = Inbox()
    inbox.refusals = 1
    refused = "SMTPRecipientsRefused: 550 5.1.1 No such user"
    with smtp_server(inbox) as port, pytest.raises(EmailNotSent, match=re.escape(refused)):
        await smtp_sender(port).send(MESSAGE)
    assert inbox.received == []
