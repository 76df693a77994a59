"""The account mails: what they say, in text and HTML. Names are the user's
own input, so they are escaped in HTML; links carry their token after `#`."""

from datetime import timedelta
from html import escape

from app.core.dtos import EmailMessage
from app.core.entities import User


def _lifetime(ttl: timedelta) -> str:
    minutes = int(ttl.total_seconds() // 60)
    if minutes % (24 * 60) == 0:
        days = minutes // (24 * 60)
        return f"{days} day" + ("s" if days != 1 else "")
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour" + ("s" if hours != 1 else "")
    return f"{minutes} minute" + ("s" if minutes != 1 else "")


_LINK = object()  # where the link goes among a message's paragraphs


def _message(user: User, subject: str, paragraphs: list[object], link: str = "") -> EmailMessage:
    name = user.name.value
    text = [f"Hello {name},", *(link if p is _LINK else str(p) for p in paragraphs)]
    anchor = f'<a href="{escape(link)}">{escape(link)}</a>'
    html = [
        f"Hello {escape(name)},",
        *(anchor if p is _LINK else escape(str(p)) for p in paragraphs),
    ]
    return EmailMessage(
        to=user.email.value,
        to_name=name,
        subject=subject,
        text="\n\n".join(text) + "\n",
        html="".join(f"<p>{p}</p>\n" for p in html),
    )


def password_reset(user: User, link: str, ttl: timedelta) -> EmailMessage:
    return _message(
        user,
        "Reset your password",
        [
            "Someone asked to reset the password of your account. To choose a new one, open:",
            _LINK,
            f"The link works once, for {_lifetime(ttl)}. If you did not ask, ignore this mail: "
            "your password stays as it is.",
        ],
        link,
    )


def email_verification(user: User, link: str, ttl: timedelta) -> EmailMessage:
    return _message(
        user,
        "Confirm your email address",
        [
            "To confirm that this address is yours, open:",
            _LINK,
            f"The link works for {_lifetime(ttl)}. If you did not create an account or change "
            "its address, ignore this mail.",
        ],
        link,
    )


def password_changed(user: User) -> EmailMessage:
    return _message(
        user,
        "Your password was changed",
        [
            "The password of your account was just reset, and every session was signed out.",
            "If this was not you, reset your password again at once with 'Forgot password', "
            "and tell us: someone may have access to your email.",
        ],
    )
