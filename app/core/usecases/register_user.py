from app.core.audit import audit
from app.core.dtos import RegisterInput, UserDTO
from app.core.entities import RecoveryPolicy, TokenPurpose, User
from app.core.exceptions import EmailTaken
from app.core.ports import Clock, PasswordHasher, UserUnitOfWork
from app.core.usecases.account_mail import queue_token_mail
from app.core.value_objects import Email, Name, Password, Role


class RegisterUser:
    """Anyone may register and becomes an active `user`, with an unverified
    email: a verification mail is queued in the same transaction.

    Emails are unique, case-insensitively; the password meets the policy and is
    not the email. A concurrent registration of the same email is caught by the
    database's unique constraint and reported as EmailTaken too. Admins (made
    by CreateAdmin, from the command line) start verified, with no mail.
    """

    def __init__(
        self,
        uow: UserUnitOfWork,
        hasher: PasswordHasher,
        clock: Clock,
        policy: RecoveryPolicy,
        *,
        role: Role = Role.USER,  # CreateAdmin passes Role.ADMIN
    ) -> None:
        self._uow, self._hasher, self._clock = uow, hasher, clock
        self._policy, self._role = policy, role

    async def execute(self, data: RegisterInput) -> UserDTO:
        email, name, password = Email(data.email), Name(data.name), Password(data.password)
        password.ensure_not_email(email)
        # Cheap check first, so a taken email costs no bcrypt round.
        async with self._uow as uow:
            if await uow.users.get_by_email(email):
                raise EmailTaken()
        hashed = await self._hasher.hash(password)
        now = self._clock.now()
        admin = self._role is Role.ADMIN
        user = User.register(email, name, hashed, now, role=self._role, email_verified=admin)
        async with self._uow as uow:
            await uow.users.add(user)
            if not user.email_verified:
                await queue_token_mail(
                    uow, user, TokenPurpose.EMAIL_VERIFICATION, self._policy, now
                )
            await uow.commit()
        audit("user.registered", user_id=user.id, role=user.role)
        return UserDTO.from_entity(user)
