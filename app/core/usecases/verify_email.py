from app.core.audit import audit
from app.core.entities import TokenPurpose
from app.core.exceptions import InvalidOneTimeToken
from app.core.ports import Clock, RequestLimiter, UserUnitOfWork
from app.core.usecases.account_mail import within_recovery_limit
from app.core.value_objects.opaque_token import OpaqueToken


class VerifyEmail:
    """Marks the user's email verified with the token of a verification link.

    The token must have been sent to the user's current address. Presenting
    again a token that already verified that address changes nothing and is
    not an error (a mail client may open a link twice).
    """

    def __init__(self, uow: UserUnitOfWork, limiter: RequestLimiter, clock: Clock) -> None:
        self._uow, self._limiter, self._clock = uow, limiter, clock

    async def execute(self, token: str, client: str) -> None:
        await within_recovery_limit(self._limiter, client)
        digest = OpaqueToken(token).digest
        async with self._uow as uow:
            stored = await uow.one_time_tokens.get(digest, TokenPurpose.EMAIL_VERIFICATION)
            user = await uow.users.get_for_update(stored.user_id) if stored else None
            if stored is None or user is None:
                raise InvalidOneTimeToken()
            now = self._clock.now()
            if (
                stored.used_at is not None
                and user.email_verified
                and user.email.value == stored.email
            ):
                return  # this link verified this address already
            if not stored.is_usable_by(user, now) or not await uow.one_time_tokens.use(digest, now):
                raise InvalidOneTimeToken()
            user.verify_email(now)
            await uow.users.update(user)
            await uow.commit()
        audit("user.email_verified", user_id=user.id)
