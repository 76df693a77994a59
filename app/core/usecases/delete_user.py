import uuid

from app.core.audit import audit
from app.core.dtos import UserDTO
from app.core.exceptions import LastActiveAdmin, NotEnoughPermissions, UserNotFound
from app.core.ports import UserUnitOfWork
from app.core.value_objects import ID


class DeleteUser:
    """Admins delete anyone, a user deletes itself (403 for any other id).

    The last active admin cannot be deleted. A deleted user's tokens stop
    working because every request reads the user afresh.
    """

    def __init__(self, uow: UserUnitOfWork) -> None:
        self._uow = uow

    async def execute(self, actor: UserDTO, user_id: uuid.UUID) -> None:
        if user_id != actor.id and not actor.is_admin:
            raise NotEnoughPermissions()
        async with self._uow as uow:
            # The active admins are locked before the target row, as in
            # AdminUpdateUser: one lock order, so two admins removing each
            # other cannot deadlock.
            active_admins = await uow.users.count_active_admins()
            user = await uow.users.get_for_update(ID(user_id))
            if user is None:
                raise UserNotFound()
            if user.is_active_admin and active_admins <= 1:
                raise LastActiveAdmin()
            await uow.users.delete(user.id)
            await uow.commit()
        audit("user.deleted", user_id=user_id, by=actor.id)
