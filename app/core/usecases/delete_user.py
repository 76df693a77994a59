import uuid

from app.core.audit import audit
from app.core.dtos import UserDTO
from app.core.exceptions import InvalidToken, LastActiveAdmin, NotEnoughPermissions, UserNotFound
from app.core.ports import UserUnitOfWork
from app.core.usecases.admin_rights import ensure_still_admin
from app.core.value_objects import ID


class DeleteUser:
    """Admins delete anyone, a user deletes itself (403 for any other id).

    An admin's rights are decided inside the transaction, on the active
    admins' rows locked before the target's, as in AdminUpdateUser (one lock
    order, so two admins removing each other cannot deadlock). The last active
    admin cannot be deleted. A deleted user's tokens stop working because
    every request reads the user afresh.
    """

    def __init__(self, uow: UserUnitOfWork) -> None:
        self._uow = uow

    async def execute(self, actor: UserDTO, user_id: uuid.UUID) -> None:
        itself = user_id == actor.id
        if not itself and not actor.is_admin:
            raise NotEnoughPermissions()  # spares a transaction; decided again inside it
        async with self._uow as uow:
            active_admins = await uow.users.lock_active_admins()
            if not itself:
                await ensure_still_admin(uow.users, ID(actor.id), active_admins)
            user = await uow.users.get_for_update(ID(user_id))
            if user is None or (itself and not user.is_active):
                # Deleted, or deactivated, since its token was resolved.
                raise InvalidToken() if itself else UserNotFound()
            if user.is_active_admin and len(active_admins) <= 1:
                raise LastActiveAdmin()
            await uow.users.delete(user.id)
            await uow.commit()
        audit("user.deleted", user_id=user_id, by=actor.id)
