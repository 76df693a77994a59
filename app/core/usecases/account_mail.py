from datetime import datetime

from app.core import messages
from app.core.entities import OneTimeToken, RecoveryPolicy, TokenPurpose, User
from app.core.exceptions import TooManyRequests
from app.core.ports import RequestLimiter, UserUnitOfWork
from app.core.value_objects.opaque_token import OpaqueToken


async def queue_token_mail(
    uow: UserUnitOfWork, user: User, purpose: TokenPurpose, policy: RecoveryPolicy, now: datetime
) -> None:
    """A new one-time token of `purpose` for `user` (voiding the older ones)
    and the mail that carries its link, both in the unit of work."""
    await uow.one_time_tokens.void_all(user.id, purpose, now)
    token = OpaqueToken.new()
    ttl = policy.ttl(purpose)
    await uow.one_time_tokens.add(OneTimeToken.issue(token.digest, purpose, user, now, ttl))
    link = policy.link(purpose, token.value)
    if purpose is TokenPurpose.PASSWORD_RESET:
        message = messages.password_reset(user, link, ttl)
    else:
        message = messages.email_verification(user, link, ttl)
    await uow.outbox.add(message, now)


async def within_recovery_limit(limiter: RequestLimiter, client: str) -> None:
    """The per-client limit shared by the four recovery endpoints."""
    retry_after = await limiter.hit(client)
    if retry_after is not None:
        raise TooManyRequests(retry_after)
