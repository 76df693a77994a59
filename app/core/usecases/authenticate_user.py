from app.core.audit import audit
from app.core.dtos import Credentials, TokenPair
from app.core.entities import Session, SessionPolicy, User
from app.core.exceptions import (
    EmailNotVerified,
    InvalidCredentials,
    InvalidEmail,
    TooManyAttempts,
    WeakPassword,
)
from app.core.ports import Clock, LoginThrottle, PasswordHasher, TokenIssuer, UserUnitOfWork
from app.core.usecases.password_attempt import password_attempt
from app.core.usecases.session_tokens import issue_tokens
from app.core.value_objects import ID, Email, HashedPassword, Password
from app.core.value_objects.password import fits_bcrypt


class AuthenticateUser:
    """Exchanges an email and password for a new session: an access token and
    a refresh token.

    - Unknown email, wrong password and inactive user fail alike, in about the
      same time: unknown emails verify a dummy hash.
    - Each attempt is counted by the LoginThrottle before its password is
      checked (`password_attempt`); past the limit every attempt (even a
      correct one) is refused until the lockout passes; a success resets the
      count.
    - A hash weaker than the current setting is upgraded on success.
    - With `require_verified_email`, a correct password of a user whose email
      is unverified starts no session (EmailNotVerified).
    - No database connection is held while bcrypt runs.
    - The session starts in a transaction that locks the user's row and checks
      it again: a user deactivated or whose password changed while bcrypt ran
      gets no session, and concurrent logins cannot exceed the policy's
      sessions per user (the oldest beyond it end).
    """

    def __init__(
        self,
        uow: UserUnitOfWork,
        hasher: PasswordHasher,
        throttle: LoginThrottle,
        tokens: TokenIssuer,
        clock: Clock,
        policy: SessionPolicy,
        *,
        require_verified_email: bool = False,
    ) -> None:
        self._uow, self._hasher, self._throttle = uow, hasher, throttle
        self._tokens, self._clock, self._policy = tokens, clock, policy
        self._require_verified_email = require_verified_email

    async def execute(self, credentials: Credentials, user_agent: str | None = None) -> TokenPair:
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
        if self._require_verified_email and not user.email_verified:
            # Only a correct password learns this: a wrong one failed above.
            audit("login.refused_unverified", user_id=user.id)
            raise EmailNotVerified()
        if await self._hasher.needs_rehash(user.hashed_password):
            await self._upgrade_hash(user.id, user.hashed_password, credentials.password)
        return await self._start_session(user, user_agent)

    async def _start_session(self, verified: User, user_agent: str | None) -> TokenPair:
        async with self._uow as uow:
            user = await uow.users.get_for_update(verified.id)
            if user is None or not user.is_active or user.token_version != verified.token_version:
                # Changed while its password was checked: as if the check had failed.
                audit("login.failed", user_id=verified.id)
                raise InvalidCredentials()
            now = self._clock.now()
            session = Session.start(user.id, now, self._policy, user_agent)
            await uow.sessions.add(session)
            await uow.sessions.end_beyond(user.id, self._policy.max_per_user, now)
            pair = await issue_tokens(uow, self._tokens, user, session, self._policy, now)
            await uow.commit()
        audit("login.succeeded", user_id=user.id, session_id=session.id)
        return pair

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
