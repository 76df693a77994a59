from app.core.audit import audit
from app.core.dtos import PasswordChange, UserDTO
from app.core.entities import TokenPurpose
from app.core.exceptions import InvalidToken, WeakPassword, WrongPassword
from app.core.ports import Clock, LoginThrottle, PasswordHasher, UserUnitOfWork
from app.core.usecases.password_attempt import password_attempt
from app.core.value_objects import ID, Password
from app.core.value_objects.password import fits_bcrypt

_LOCKED = "Too many failed password attempts; try again later"


class ChangePassword:
    """A user replaces its password, proving it knows the current one.

    The new password meets the policy, is not the email and differs from the
    current one. A wrong current password counts against the login lockout of
    the account's email, so a stolen token cannot guess its way to a takeover;
    while locked, the change is refused whatever the password. Every session
    ends, so every token issued before the change stops working. bcrypt runs outside the
    transaction; if the hash changed meanwhile, the current password is
    checked again rather than overwritten blindly.
    """

    def __init__(
        self, uow: UserUnitOfWork, hasher: PasswordHasher, throttle: LoginThrottle, clock: Clock
    ) -> None:
        self._uow, self._hasher, self._throttle, self._clock = uow, hasher, throttle, clock

    async def execute(self, actor: UserDTO, change: PasswordChange) -> None:
        actor_id = ID(actor.id)
        new_password = Password(change.new_password)
        if change.new_password == change.current_password:
            raise WeakPassword("New password must differ from the current one")
        async with self._uow as uow:
            user = await uow.users.get_by_id(actor_id)
        if user is None or not user.is_active:
            raise InvalidToken()
        new_password.ensure_not_email(user.email)
        # Counted against the login lockout of the email, as a login is.
        async with password_attempt(self._throttle, user.email.value, _LOCKED):
            current = change.current_password
            if not fits_bcrypt(current) or not await self._hasher.verify(
                current, user.hashed_password
            ):
                audit("user.password_change_failed", user_id=actor_id)
                raise WrongPassword()
        new_hash = await self._hasher.hash(new_password)
        async with self._uow as uow:
            locked = await uow.users.get_for_update(actor_id)
            if locked is None or not locked.is_active:
                raise InvalidToken()
            if locked.hashed_password != user.hashed_password:
                raise WrongPassword()  # changed concurrently: the current password is stale
            now = self._clock.now()
            locked.change_password(new_hash, now)
            await uow.users.update(locked)
            await uow.sessions.end_all(actor_id, now)
            # A reset link mailed before the change must not undo it.
            await uow.one_time_tokens.void_all(actor_id, TokenPurpose.PASSWORD_RESET, now)
            await uow.commit()
        audit("user.password_changed", user_id=actor_id)
