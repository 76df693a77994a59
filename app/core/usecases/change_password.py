from app.core.audit import audit
from app.core.dtos import PasswordChange, UserDTO
from app.core.exceptions import InvalidToken, WeakPassword, WrongPassword
from app.core.ports import Clock, PasswordHasher, UserUnitOfWork
from app.core.value_objects import ID, Password
from app.core.value_objects.password import fits_bcrypt


class ChangePassword:
    """A user replaces its password, proving it knows the current one.

    The new password meets the policy, is not the email and differs from the
    current one. Every token issued before the change stops working.
    bcrypt runs outside the transaction; if the hash changed meanwhile, the
    current password is checked again rather than overwritten blindly.
    """

    def __init__(self, uow: UserUnitOfWork, hasher: PasswordHasher, clock: Clock) -> None:
        self._uow, self._hasher, self._clock = uow, hasher, clock

    async def execute(self, actor: UserDTO, change: PasswordChange) -> None:
        actor_id = ID(actor.id)
        new_password = Password(change.new_password)
        if change.new_password == change.current_password:
            raise WeakPassword("New password must differ from the current one")
        async with self._uow as uow:
            user = await uow.users.get_by_id(actor_id)
        if user is None:
            raise InvalidToken()
        new_password.ensure_not_email(user.email)
        current = change.current_password
        if not fits_bcrypt(current) or not await self._hasher.verify(current, user.hashed_password):
            raise WrongPassword()
        new_hash = await self._hasher.hash(new_password)
        async with self._uow as uow:
            locked = await uow.users.get_for_update(actor_id)
            if locked is None:
                raise InvalidToken()
            if locked.hashed_password != user.hashed_password:
                raise WrongPassword()  # changed concurrently: the current password is stale
            locked.change_password(new_hash, self._clock.now())
            await uow.users.update(locked)
            await uow.commit()
        audit("user.password_changed", user_id=actor_id)
