from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class EmailMessage:
    """One outgoing message to one recipient, in both text and HTML."""

    to: str
    to_name: str | None
    subject: str
    # The body may hold a link with a one-time token.
    text: str = field(repr=False)
    html: str = field(repr=False)
