import dataclasses
import uuid

from app.core.audit import audit
from app.core.dtos import AdminChanges, UserDTO
from app.core.exceptions import LastActiveAdmin, NotEnoughPermissions, UserNotFound
from app.core.ports import Clock, UserUnitOfWork
from app.core.value_objects import ID, Email, Name, Role


class AdminUpdateUser:
    """An admin changes anyone's name, email, role or active flag.

    The new email must be free. The last active admin cannot be demoted or
    deactivated: the active admins are locked while this is checked, so two
    admins demoting each other at once cannot both succeed.
    """

    def __init__(self, uow: UserUnitOfWork, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    async def execute(self, actor: UserDTO, user_id: uuid.UUID, changes: AdminChanges) -> UserDTO:
        if not actor.is_admin:
            raise NotEnoughPermissions()
        name = Name(changes.name) if changes.name is not None else None
        email = Email(changes.email) if changes.email is not None else None
        role = Role.parse(changes.role) if changes.role is not None else None
        may_remove_admin = role is Role.USER or changes.is_active is False
        async with self._uow as uow:
            # The active admins are locked before the target row, as in
            # DeleteUser: one lock order, so two admins demoting each other
            # cannot deadlock.
            active_admins = await uow.users.count_active_admins() if may_remove_admin else 0
            user = await uow.users.get_for_update(ID(user_id))
            if user is None:
                raise UserNotFound()
            was_active_admin = user.is_active_admin
            before = dataclasses.replace(user)
            now = self._clock.now()
            if name is not None:
                user.rename(name, now)
            if email is not None:
                user.change_email(email, now)
            if role is not None:
                user.change_role(role, now)
            if changes.is_active is True:
                user.activate(now)
            elif changes.is_active is False:
                user.deactivate(now)
            losing_admin = was_active_admin and not user.is_active_admin
            if losing_admin and active_admins <= 1:
                raise LastActiveAdmin()
            await uow.users.update(user)
            await uow.commit()
        if role is not None and role is not before.role:
            audit("user.role_changed", user_id=user.id, by=actor.id, role=role)
        if changes.is_active is not None and changes.is_active != before.is_active:
            event = "user.activated" if changes.is_active else "user.deactivated"
            audit(event, user_id=user.id, by=actor.id)
        return UserDTO.from_entity(user)
