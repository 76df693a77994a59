from app.core.audit import audit
from app.core.dtos import TokenPair
from app.core.entities import SessionPolicy
from app.core.exceptions import InvalidRefreshToken
from app.core.ports import Clock, TokenIssuer, UserUnitOfWork
from app.core.usecases.session_tokens import issue_tokens
from app.core.value_objects.opaque_token import OpaqueToken


class RefreshSession:
    """Exchanges a refresh token for a new access token and a new refresh
    token (rotation, RFC 9700 §4.14.2); the one presented is spent.

    - Unknown, expired, spent, of an ended session or of an inactive user:
      one answer, InvalidRefreshToken.
    - Spending is atomic, so of N simultaneous refreshes of one token exactly
      one rotates it. Within the policy's reuse interval after that, the token
      may be spent once more (a second tab refreshing at the same moment gets
      its own pair); any other presentation of a spent token is reuse: the
      whole session ends, its access tokens with it, and it is audited.
    - No password is hashed and the login lockout is not involved.
    """

    def __init__(
        self, uow: UserUnitOfWork, tokens: TokenIssuer, clock: Clock, policy: SessionPolicy
    ) -> None:
        self._uow, self._tokens, self._clock, self._policy = uow, tokens, clock, policy

    async def execute(self, refresh_token: str) -> TokenPair:
        digest = OpaqueToken(refresh_token).digest
        async with self._uow as uow:
            now = self._clock.now()
            stored = await uow.refresh_tokens.get(digest)
            if stored is None or stored.is_expired(now):
                raise InvalidRefreshToken()
            session = await uow.sessions.get(stored.session_id)
            if session is None or not session.is_live(now):
                raise InvalidRefreshToken()
            user = await uow.users.get_by_id(session.user_id)
            if user is None or not user.is_active:
                raise InvalidRefreshToken()
            if not await uow.refresh_tokens.spend(digest, now) and not (
                self._policy.reuse_interval
                and await uow.refresh_tokens.spend_again(digest, now - self._policy.reuse_interval)
            ):
                # Someone holds a token already used: the thief or its victim.
                await uow.sessions.end(session.id, now)
                await uow.commit()
                audit("session.refresh_token_reused", user_id=user.id, session_id=session.id)
                raise InvalidRefreshToken()
            await uow.sessions.touch(session.id, now)
            pair = await issue_tokens(uow, self._tokens, user, session, self._policy, now)
            await uow.commit()
        return pair
