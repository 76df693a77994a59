from app.core.audit import audit
from app.core.entities import RecoveryPolicy, TokenPurpose
from app.core.ports import Clock, UserUnitOfWork
from app.core.usecases.account_mail import queue_token_mail


class SendRequestedMail:
    """Turns the oldest recorded request (RequestAccountMail) into a mail in
    the outbox, or into nothing: no active account at that address, an email
    already verified, or a recovery mail to that address within the cooldown
    (extra requests are dropped silently). One request per unit of work."""

    def __init__(self, uow: UserUnitOfWork, clock: Clock, policy: RecoveryPolicy) -> None:
        self._uow, self._clock, self._policy = uow, clock, policy

    async def execute(self) -> bool:
        """False when no request was waiting."""
        async with self._uow as uow:
            request = await uow.mail_requests.take()
            if request is None:
                return False
            purpose, email = request
            now, queued_for = self._clock.now(), None
            user = await uow.users.get_by_email(email)
            wanted = user is not None and user.is_active
            if user is not None and purpose is TokenPurpose.EMAIL_VERIFICATION:
                wanted = wanted and not user.email_verified
            if (
                user is not None
                and wanted
                and await uow.mail_requests.claim_cooldown(email, now, self._policy.cooldown)
            ):
                await queue_token_mail(uow, user, purpose, self._policy, now)
                queued_for = user.id
            await uow.commit()
        if queued_for is not None:
            audit(f"user.{purpose.value}_mail_queued", user_id=queued_for)
        return True
