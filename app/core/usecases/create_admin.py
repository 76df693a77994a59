from app.core.dtos import RegisterInput, UserDTO
from app.core.entities import RecoveryPolicy
from app.core.ports import Clock, PasswordHasher, UserUnitOfWork
from app.core.usecases.register_user import RegisterUser
from app.core.value_objects import Role


class CreateAdmin:
    """An operator creates an active admin with a verified email (from the
    command line); registration's rules apply."""

    def __init__(
        self, uow: UserUnitOfWork, hasher: PasswordHasher, clock: Clock, policy: RecoveryPolicy
    ) -> None:
        self._register = RegisterUser(uow, hasher, clock, policy, role=Role.ADMIN)

    async def execute(self, data: RegisterInput) -> UserDTO:
        return await self._register.execute(data)
