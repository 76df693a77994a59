import dataclasses
import uuid

from app.core.audit import audit
from app.core.dtos import AdminChanges, UserDTO
from app.core.entities import RecoveryPolicy, TokenPurpose
from app.core.exceptions import LastActiveAdmin, NotEnoughPermissions, UserNotFound
from app.core.ports import Clock, UserUnitOfWork
from app.core.usecases.account_mail import queue_token_mail
from app.core.usecases.admin_rights import ensure_still_admin
from app.core.value_objects import ID, Email, Name, Role


class AdminUpdateUser:
    """An admin changes anyone's name, email, role or active flag.

    The new email must be free. The actor's rights and the last-admin rule are
    decided inside the write's transaction, on the active admins' rows locked
    before the target's: an admin demoted or deactivated while its request was
    in flight changes nothing, and two admins demoting each other at once
    cannot both succeed (nor deadlock: one lock order). A demotion or a
    deactivation ends the user's sessions and tokens. A new email is
    unverified, and a verification mail goes to it.
    """

    def __init__(self, uow: UserUnitOfWork, clock: Clock, policy: RecoveryPolicy) -> None:
        self._uow, self._clock, self._policy = uow, clock, policy

    async def execute(self, actor: UserDTO, user_id: uuid.UUID, changes: AdminChanges) -> UserDTO:
        if not actor.is_admin:
            raise NotEnoughPermissions()  # spares a transaction; decided again inside it
        name = Name(changes.name) if changes.name is not None else None
        email = Email(changes.email) if changes.email is not None else None
        role = Role.parse(changes.role) if changes.role is not None else None
        async with self._uow as uow:
            active_admins = await uow.users.lock_active_admins()
            await ensure_still_admin(uow.users, ID(actor.id), active_admins)
            user = await uow.users.get_for_update(ID(user_id))
            if user is None:
                raise UserNotFound()
            was_active_admin = user.is_active_admin
            before = dataclasses.replace(user)
            now = self._clock.now()
            if name is not None:
                user.rename(name, now)
            email_changed = email is not None and user.change_email(email, now)
            if role is not None:
                user.change_role(role, now)
            if changes.is_active is True:
                user.activate(now)
            elif changes.is_active is False:
                user.deactivate(now)
            if was_active_admin and not user.is_active_admin and len(active_admins) <= 1:
                raise LastActiveAdmin()
            await uow.users.update(user)
            if user.token_version != before.token_version:  # demoted or deactivated
                await uow.sessions.end_all(user.id, now)
            if email_changed or changes.is_active is False:
                # Links mailed before must not outlive the address, nor a deactivation.
                await uow.one_time_tokens.void_all(user.id, None, now)
            if email_changed:
                await queue_token_mail(
                    uow, user, TokenPurpose.EMAIL_VERIFICATION, self._policy, now
                )
            await uow.commit()
        if role is not None and role is not before.role:
            audit("user.role_changed", user_id=user.id, by=actor.id, role=role)
        if changes.is_active is not None and changes.is_active != before.is_active:
            event = "user.activated" if changes.is_active else "user.deactivated"
            audit(event, user_id=user.id, by=actor.id)
        return UserDTO.from_entity(user)
