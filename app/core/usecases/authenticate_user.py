from app.core.audit import audit
from app.core.dtos import AccessToken, Credentials
from app.core.entities import User
from app.core.exceptions import InvalidCredentials, InvalidEmail, TooManyAttempts, WeakPassword
from app.core.ports import LoginThrottle, PasswordHasher, TokenIssuer, UserUnitOfWork
from app.core.usecases.password_attempt import password_attempt
from app.core.value_objects import ID, Email, HashedPassword, Password
from app.core.value_objects.password import fits_bcrypt


class AuthenticateUser:
    """Exchanges an email and password for an access token.

    - Unknown email, wrong password and inactive user fail alike, in about the
      same time: unknown emails verify a dummy hash.
    - Each attempt is counted by the LoginThrottle before its password is
      checked (`password_attempt`); past the limit every attempt (even a
      correct one) is refused until the lockout passes; a success resets the
      count.
    - A hash weaker than the current setting is upgraded on success.
    - No database connection is held while bcrypt runs.
    """

    def __init__(
        self,
        uow: UserUnitOfWork,
        hasher: PasswordHasher,
        throttle: LoginThrottle,
        tokens: TokenIssuer,
    ) -> None:
        self._uow, self._hasher, self._throttle, self._tokens = uow, hasher, throttle, tokens

    async def execute(self, credentials: Credentials) -> AccessToken:
        try:
            email = Email(credentials.username)
        except InvalidEmail:
            # No account can have this name, so answering at once reveals nothing.
            raise InvalidCredentials() from None
        try:
            async with password_attempt(self._throttle, email.value):
                async with self._uow as uow:
                    user = await uow.users.get_by_email(email)
                verified = await self._verify(user, credentials.password)
                if user is None or not verified or not user.is_active:
                    audit("login.failed", user_id=user.id if user else "unknown")
                    raise InvalidCredentials()
        except TooManyAttempts:
            audit("login.refused_locked")
            raise
        audit("login.succeeded", user_id=user.id)
        if await self._hasher.needs_rehash(user.hashed_password):
            await self._upgrade_hash(user.id, user.hashed_password, credentials.password)
        return self._tokens.issue(user)

    async def _verify(self, user: User | None, candidate: str) -> bool:
        # A candidate no password could equal is refused without hashing, for
        # known and unknown emails alike.
        if not fits_bcrypt(candidate):
            return False
        if user is None:
            # Unknown emails verify a dummy hash so timing does not reveal accounts.
            await self._hasher.verify_dummy(candidate)
            return False
        return await self._hasher.verify(candidate, user.hashed_password)

    async def _upgrade_hash(self, user_id: ID, old: HashedPassword, candidate: str) -> None:
        try:
            password = Password(candidate)
        except WeakPassword:
            return  # the policy changed since it was set; the next password change fixes it
        new = await self._hasher.hash(password)
        async with self._uow as uow:
            await uow.users.replace_hash(user_id, old, new)
            await uow.commit()
