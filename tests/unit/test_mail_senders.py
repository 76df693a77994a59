"""The message and the senders that need no server: the MIME message the SMTP
adapter builds, the console sender and the memory fake."""

import io
from email.headerregistry import Address
from email.utils import parsedate_to_datetime

import pytest

from app.core.dtos import EmailMessage
from app.core.exceptions import DomainError, EmailNotSent
from app.infra.mail.console_sender import ConsoleEmailSender
from app.infra.mail.memory_sender import MemoryEmailSender
from app.infra.mail.smtp_sender import SmtpEmailSender

TOKEN = "tok-3f9a1c0d"
LINK = f"https://app.example/reset#token={TOKEN}"
PASSWORD = "smtp-pass-Q7x!"
MESSAGE = EmailMessage(
    to="ann@example.com",
    to_name="Ann Example",
    subject="Reset your password",
    text=f"Open {LINK} within 30 minutes.\n",
    html=f'<p><a href="{LINK}">Reset your password</a></p>\n',
)


def a_sender(
    *, starttls: bool = True, ssl: bool = False, from_name: str | None = "User Service"
) -> SmtpEmailSender:
    return SmtpEmailSender(
        host="smtp.example",
        port=587,
        username="mailer",
        password=PASSWORD,
        starttls=starttls,
        ssl=ssl,
        timeout=10.0,
        from_email="no-reply@users.example",
        from_name=from_name,
    )


def test_a_message_never_shows_its_body_in_its_repr() -> None:
    shown = repr(MESSAGE)
    assert TOKEN not in shown
    assert "ann@example.com" in shown


def test_email_not_sent_is_not_a_domain_error() -> None:
    # It never reaches HTTP, so it must not fall into the status table.
    assert not issubclass(EmailNotSent, DomainError)


def test_starttls_and_implicit_tls_together_are_refused() -> None:
    with pytest.raises(ValueError, match="mutually exclusive"):
        a_sender(starttls=True, ssl=True)


def test_the_sender_keeps_its_password_out_of_its_repr() -> None:
    assert PASSWORD not in repr(a_sender())


def test_the_mime_message_is_text_then_html_with_addresses_and_ids() -> None:
    mime = a_sender().compose(MESSAGE)
    assert mime["From"].addresses == (Address("User Service", addr_spec="no-reply@users.example"),)
    assert mime["To"].addresses == (Address("Ann Example", addr_spec="ann@example.com"),)
    assert mime["Subject"] == "Reset your password"
    assert parsedate_to_datetime(mime["Date"]).utcoffset() is not None
    assert mime["Message-ID"].endswith("@users.example>")
    assert mime.get_content_type() == "multipart/alternative"
    parts = list(mime.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert [p.get_content() for p in parts] == [MESSAGE.text, MESSAGE.html]


def test_each_message_gets_its_own_id() -> None:
    sender = a_sender()
    assert sender.compose(MESSAGE)["Message-ID"] != sender.compose(MESSAGE)["Message-ID"]


def test_without_names_the_addresses_stand_alone() -> None:
    mime = a_sender(from_name=None).compose(
        EmailMessage("ann@example.com", None, "Hi", "text", "<p>html</p>")
    )
    assert (str(mime["From"]), str(mime["To"])) == ("no-reply@users.example", "ann@example.com")


def test_a_name_outside_ascii_is_encoded_and_reads_back() -> None:
    mime = a_sender().compose(
        EmailMessage("zoe@example.com", "Zoë Ångström", "Hi", "text", "<p>html</p>")
    )
    assert "Zoë" not in mime.as_string()  # headers on the wire are ASCII
    assert mime["To"].addresses[0].display_name == "Zoë Ångström"


def test_a_line_break_in_a_header_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(ValueError, match="linefeed"):
        a_sender().compose(
            EmailMessage("ann@example.com", None, "Hi\r\nBcc: eve@example.com", "t", "<p>h</p>")
        )


async def test_the_console_sender_writes_recipient_subject_and_text() -> None:
    stream = io.StringIO()
    await ConsoleEmailSender(stream).send(MESSAGE)
    written = stream.getvalue()
    assert "To: Ann Example <ann@example.com>" in written
    assert "Subject: Reset your password" in written
    assert LINK in written
    assert "<a href" not in written  # the text part only


async def test_the_console_sender_writes_to_stderr_by_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    await ConsoleEmailSender().send(EmailMessage("bob@example.com", None, "Hi", LINK, "<p/>"))
    captured = capsys.readouterr()
    assert "To: bob@example.com\n" in captured.err
    assert LINK in captured.err
    assert captured.out == ""


async def test_the_memory_sender_keeps_what_it_sends_in_order() -> None:
    memory = MemoryEmailSender()
    other = EmailMessage("bob@example.com", None, "Hi", "text", "<p>html</p>")
    await memory.send(MESSAGE)
    await memory.send(other)
    assert memory.sent == [MESSAGE, other]


async def test_the_memory_sender_fails_as_often_as_told_then_sends() -> None:
    memory = MemoryEmailSender()
    memory.fail_next(2)
    for _ in range(2):
        with pytest.raises(EmailNotSent):
            await memory.send(MESSAGE)
    assert memory.sent == []
    await memory.send(MESSAGE)
    assert memory.sent == [MESSAGE]
