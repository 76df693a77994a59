from app.core.dtos import EmailMessage
from app.core.exceptions import EmailNotSent


class MemoryEmailSender:
    """Keeps each message it sends in `sent`, for tests.

    `fail_next(n)` makes the next n sends raise EmailNotSent and keep
    nothing, as a mail server outage would.
    """

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []
        self._failures_left = 0

    def fail_next(self, count: int = 1) -> None:
        self._failures_left = count

    async def send(self, message: EmailMessage) -> None:
        if self._failures_left > 0:
            self._failures_left -= 1
            raise EmailNotSent("MemoryEmailSender: told to fail")
        self.sent.append(message)
