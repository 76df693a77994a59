from app.core.audit import audit
from app.core.dtos import RegisterInput, UserDTO
from app.core.entities import User
from app.core.exceptions import EmailTaken
from app.core.ports import Clock, PasswordHasher, UserUnitOfWork
from app.core.value_objects import Email, Name, Password, Role


class RegisterUser:
    """Anyone may register and becomes an active `user`.

    Emails are unique, case-insensitively; the password meets the policy and is
    not the email. A concurrent registration of the same email is caught by the
    database's unique constraint and reported as EmailTaken too.
    """

    def __init__(
        self,
        uow: UserUnitOfWork,
        hasher: PasswordHasher,
        clock: Clock,
        *,
        role: Role = Role.USER,  # CreateAdmin passes Role.ADMIN
    ) -> None:
        self._uow, self._hasher, self._clock, self._role = uow, hasher, clock, role

    async def execute(self, data: RegisterInput) -> UserDTO:
        email, name, password = Email(data.email), Name(data.name), Password(data.password)
        password.ensure_not_email(email)
        # Cheap check first, so a taken email costs no bcrypt round.
        async with self._uow as uow:
            if await uow.users.get_by_email(email):
                raise EmailTaken()
        hashed = await self._hasher.hash(password)
        user = User.register(email, name, hashed, self._clock.now(), role=self._role)
        async with self._uow as uow:
            await uow.users.add(user)
            await uow.commit()
        audit("user.registered", user_id=user.id, role=user.role)
        return UserDTO.from_entity(user)
