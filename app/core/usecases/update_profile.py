from app.core.dtos import ProfileChanges, UserDTO
from app.core.entities import RecoveryPolicy, TokenPurpose
from app.core.exceptions import InvalidToken
from app.core.ports import Clock, UserUnitOfWork
from app.core.usecases.account_mail import queue_token_mail
from app.core.value_objects import ID, Email, Name


class UpdateProfile:
    """A user changes its own name and email; fields left out stay as they are.

    The new email must be free (EmailTaken otherwise); it is unverified until
    the link mailed to it (in the same transaction) is opened, and the links
    sent to the old address stop working.
    """

    def __init__(self, uow: UserUnitOfWork, clock: Clock, policy: RecoveryPolicy) -> None:
        self._uow, self._clock, self._policy = uow, clock, policy

    async def execute(self, actor: UserDTO, changes: ProfileChanges) -> UserDTO:
        name = Name(changes.name) if changes.name is not None else None
        email = Email(changes.email) if changes.email is not None else None
        async with self._uow as uow:
            user = await uow.users.get_for_update(ID(actor.id))
            if user is None or not user.is_active:
                raise InvalidToken()  # deleted or deactivated since its token was resolved
            now = self._clock.now()
            if name is not None:
                user.rename(name, now)
            changed = email is not None and user.change_email(email, now)
            await uow.users.update(user)
            if changed:
                await uow.one_time_tokens.void_all(user.id, None, now)
                await queue_token_mail(
                    uow, user, TokenPurpose.EMAIL_VERIFICATION, self._policy, now
                )
            await uow.commit()
        return UserDTO.from_entity(user)
