from app.core import messages
from app.core.audit import audit
from app.core.entities import TokenPurpose
from app.core.exceptions import InvalidOneTimeToken
from app.core.ports import Clock, LoginThrottle, PasswordHasher, RequestLimiter, UserUnitOfWork
from app.core.usecases.account_mail import within_recovery_limit
from app.core.value_objects import Password
from app.core.value_objects.opaque_token import OpaqueToken


class ResetPassword:
    """Sets a new password with the token of a reset link.

    In one transaction: spends the token (once: of concurrent resets with one
    token, one wins), sets the password, ends every session, voids every
    other one-time token of the user, marks the email verified (the link
    reached it) and queues a "your password was changed" mail. The login
    lockout of the email is cleared after. No tokens are answered: the user
    logs in. bcrypt runs outside the transaction.
    """

    def __init__(
        self,
        uow: UserUnitOfWork,
        hasher: PasswordHasher,
        throttle: LoginThrottle,
        limiter: RequestLimiter,
        clock: Clock,
    ) -> None:
        self._uow, self._hasher, self._throttle = uow, hasher, throttle
        self._limiter, self._clock = limiter, clock

    async def execute(self, token: str, new_password: str, client: str) -> None:
        await within_recovery_limit(self._limiter, client)
        digest = OpaqueToken(token).digest
        async with self._uow as uow:
            stored = await uow.one_time_tokens.get(digest, TokenPurpose.PASSWORD_RESET)
            user = await uow.users.get_by_id(stored.user_id) if stored else None
        if stored is None or user is None or not stored.is_usable_by(user, self._clock.now()):
            raise InvalidOneTimeToken()
        password = Password(new_password)
        password.ensure_not_email(user.email)
        hashed = await self._hasher.hash(password)
        async with self._uow as uow:
            locked = await uow.users.get_for_update(user.id)
            now = self._clock.now()
            if not stored.is_usable_by(locked, now) or not await uow.one_time_tokens.use(
                digest, now
            ):
                raise InvalidOneTimeToken()  # used, or the user changed, meanwhile
            assert locked is not None  # is_usable_by checked it
            locked.change_password(hashed, now)
            locked.verify_email(now)
            await uow.users.update(locked)
            await uow.sessions.end_all(locked.id, now)
            await uow.one_time_tokens.void_all(locked.id, None, now)
            await uow.outbox.add(messages.password_changed(locked), now)
            await uow.commit()
        await self._throttle.reset(locked.email.value)
        audit("user.password_reset", user_id=locked.id)
