import sys
from typing import TextIO

from app.core.dtos import EmailMessage


class ConsoleEmailSender:
    """Prints each message (recipient, subject, text part) instead of sending it.

    The development default: a developer running `make run` sees the link in
    the terminal without a mail server. It goes to stderr, not to the log,
    whose records may be shipped elsewhere. Never fails.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    async def send(self, message: EmailMessage) -> None:
        to = f"{message.to_name} <{message.to}>" if message.to_name else message.to
        # Looked up at each send, so a redirected sys.stderr is honoured.
        stream = self._stream or sys.stderr
        stream.write(
            f"----- email -----\nTo: {to}\nSubject: {message.subject}\n\n"
            f"{message.text.rstrip()}\n-----------------\n"
        )
        stream.flush()
