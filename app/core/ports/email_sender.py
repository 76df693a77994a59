from typing import Protocol

from app.core.dtos import EmailMessage


class EmailSender(Protocol):
    """Hands one message to the mail server, for one recipient.

    Returning means the server accepted the message for delivery. Raises
    EmailNotSent when it could not be handed over (connection refused,
    timeout, TLS or AUTH failure, the server refusing the sender, the
    recipient or the data), so the caller keeps it and retries later. Nothing
    is sent silently in part: a send either succeeds whole or raises.
    """

    async def send(self, message: EmailMessage) -> None: ...
