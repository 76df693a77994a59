from app.core.audit import audit
from app.core.dtos import UserDTO
from app.core.exceptions import NotEnoughPermissions, UserNotFound
from app.core.ports import Clock, UserUnitOfWork
from app.core.usecases.admin_rights import ensure_still_admin
from app.core.value_objects import ID


class AdminEndSessions:
    """An admin ends every session of a user (a compromised account, say).
    The actor's rights are decided inside the write's transaction."""

    def __init__(self, uow: UserUnitOfWork, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    async def execute(self, actor: UserDTO, user_id: ID) -> None:
        if not actor.is_admin:
            raise NotEnoughPermissions()  # spares a transaction; decided again inside it
        async with self._uow as uow:
            active_admins = await uow.users.lock_active_admins()
            await ensure_still_admin(uow.users, ID(actor.id), active_admins)
            if await uow.users.get_by_id(user_id) is None:
                raise UserNotFound()
            await uow.sessions.end_all(user_id, self._clock.now())
            await uow.commit()
        audit("session.ended_by_admin", user_id=user_id, by=actor.id)
