import uuid

from app.core.dtos import UserDTO
from app.core.exceptions import NotEnoughPermissions, UserNotFound
from app.core.ports import UserUnitOfWork
from app.core.value_objects import ID


class GetUser:
    """Admins see anyone; a user sees only itself (403 for any other id, existing or not)."""

    def __init__(self, uow: UserUnitOfWork) -> None:
        self._uow = uow

    async def execute(self, actor: UserDTO, user_id: uuid.UUID) -> UserDTO:
        if user_id == actor.id:
            return actor  # read afresh when the token was resolved
        if not actor.is_admin:
            raise NotEnoughPermissions()
        async with self._uow as uow:
            user = await uow.users.get_by_id(ID(user_id))
        if user is None:
            raise UserNotFound()
        return UserDTO.from_entity(user)
