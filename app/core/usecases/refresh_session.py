from datetime import datetime

from app.core.audit import audit
from app.core.dtos import TokenPair
from app.core.entities import SessionPolicy
from app.core.exceptions import InvalidRefreshToken, RefreshTokenReused
from app.core.ports import Clock, RefreshGrant, RefreshGrants, TokenIssuer
from app.core.usecases.session_tokens import new_refresh_token, token_pair
from app.core.value_objects.opaque_token import OpaqueToken


class RefreshSession:
    """Exchanges a refresh token for a new access token and a new refresh
    token (rotation, RFC 9700 §4.14.2); the one presented is spent.

    - Unknown, expired, of an ended session or of an inactive user: one
      answer, InvalidRefreshToken, and nothing is written.
    - The token is held while it is checked and spent, so of N simultaneous
      refreshes of one token exactly one rotates it. Within the policy's
      reuse interval after that, the token may be spent once more (a second
      tab refreshing at the same moment gets its own pair); any other
      presentation of a spent token is reuse: the whole session ends, its
      access tokens with it, and it is audited.
    - No password is hashed and the login lockout is not involved.
    """

    def __init__(
        self, grants: RefreshGrants, tokens: TokenIssuer, clock: Clock, policy: SessionPolicy
    ) -> None:
        self._grants, self._tokens, self._clock, self._policy = grants, tokens, clock, policy

    async def execute(self, refresh_token: str) -> TokenPair:
        digest = OpaqueToken(refresh_token).digest
        async with self._grants.hold(digest) as held:
            now = self._clock.now()
            grant = held.grant
            if grant is None or not _usable(grant, now):
                raise InvalidRefreshToken()
            token, session, user = grant.token, grant.session, grant.user
            # Someone holds a token already used: the thief or its victim.
            reused = token.spent_at is not None and not token.may_be_spent_again(now, self._policy)
            if reused:
                await held.end_session(now)
            else:
                refresh, stored = new_refresh_token(session, self._policy, now)
                await held.rotate(stored, now)
        if reused:  # the session's end is committed: now refuse
            audit("session.refresh_token_reused", user_id=user.id, session_id=session.id)
            raise RefreshTokenReused()
        return token_pair(self._tokens, user, session, refresh, stored, now)


def _usable(grant: RefreshGrant, now: datetime) -> bool:
    return not grant.token.is_expired(now) and grant.session.is_live(now) and grant.user.is_active
