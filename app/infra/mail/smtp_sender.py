from email.message import EmailMessage as MimeMessage
from email.utils import formataddr, formatdate, make_msgid
from ssl import SSLContext, create_default_context

import aiosmtplib

from app.core.dtos import EmailMessage
from app.core.exceptions import EmailNotSent

_MAX_REASON_CHARS = 200


class SmtpEmailSender:
    """Sends each message over its own SMTP connection (aiosmtplib).

    `starttls` upgrades a plain connection (usually port 587); `ssl` speaks
    TLS from the first byte (implicit TLS, usually 465). Certificates are
    verified against `tls_context`, the system's CAs unless one is given.
    AUTH only when a username is given. `timeout` bounds each step: the
    connection, the TLS handshake and every command.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        starttls: bool,
        ssl: bool,
        timeout: float,
        from_email: str,
        from_name: str | None = None,
        tls_context: SSLContext | None = None,
    ) -> None:
        if starttls and ssl:
            raise ValueError("starttls and ssl are mutually exclusive: choose one kind of TLS")
        self._host, self._port = host, port
        self._username = username or None
        self._password = password or ""
        self._starttls, self._ssl, self._timeout = starttls, ssl, timeout
        self._from_email, self._from_name = from_email, from_name
        self._tls_context = tls_context or create_default_context()

    def compose(self, message: EmailMessage) -> MimeMessage:
        """The MIME message: multipart/alternative, the text part first."""
        mime = MimeMessage()
        mime["From"] = formataddr((self._from_name, self._from_email))
        mime["To"] = formataddr((message.to_name, message.to))
        mime["Subject"] = message.subject
        mime["Date"] = formatdate(usegmt=True)
        mime["Message-ID"] = make_msgid(domain=self._from_email.rpartition("@")[2])
        mime.set_content(message.text)
        mime.add_alternative(message.html, subtype="html")
        return mime

    async def send(self, message: EmailMessage) -> None:
        mime = self.compose(message)
        try:
            # One recipient: a refusal raises, so nothing is sent in part.
            await aiosmtplib.send(
                mime,
                sender=self._from_email,
                recipients=[message.to],
                hostname=self._host,
                port=self._port,
                username=self._username,
                password=self._password,
                use_tls=self._ssl,
                start_tls=self._starttls,
                tls_context=self._tls_context,
                timeout=self._timeout,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # `from None`: the cause's text is the server's, and it is ours to vet.
            raise EmailNotSent(self._reason(exc)) from None

    def _reason(self, exc: Exception) -> str:
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            detail = f"{exc.code} {exc.message}"
        elif isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
            detail = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
        else:
            detail = str(exc)
        reason = " ".join(f"{type(exc).__name__}: {detail}".split())
        if self._password:
            # A server may echo what it was sent; the password is never repeated.
            reason = reason.replace(self._password, "***")
        return f"SMTP {self._host}:{self._port}: {reason}"[:_MAX_REASON_CHARS]
