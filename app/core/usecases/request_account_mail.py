from app.core.entities import TokenPurpose
from app.core.ports import Clock, RequestLimiter, UserUnitOfWork
from app.core.usecases.account_mail import within_recovery_limit
from app.core.value_objects import Email


class RequestAccountMail:
    """ "Forgot password" and "send the verification link again".

    Answers alike for every well-formed address, known, unknown or inactive:
    the request is only recorded, and the dispatcher decides later, outside
    the request, whether a mail goes out (SendRequestedMail). So neither the
    answer nor its timing tells who has an account.
    """

    def __init__(self, uow: UserUnitOfWork, limiter: RequestLimiter, clock: Clock) -> None:
        self._uow, self._limiter, self._clock = uow, limiter, clock

    async def execute(self, purpose: TokenPurpose, email: str, client: str) -> None:
        address = Email(email)
        await within_recovery_limit(self._limiter, client)
        async with self._uow as uow:
            await uow.mail_requests.add(purpose, address, self._clock.now())
            await uow.commit()
