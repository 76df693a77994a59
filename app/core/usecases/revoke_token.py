from app.core.audit import audit
from app.core.exceptions import InvalidToken
from app.core.ports import Clock, TokenIssuer, UserUnitOfWork
from app.core.value_objects import ID
from app.core.value_objects.opaque_token import OpaqueToken


class RevokeToken:
    """RFC 7009: ends the session of a valid refresh or access token; any
    other token (unknown, expired, spent, malformed) ends nothing. Either way
    the caller learns nothing: the endpoint answers alike."""

    def __init__(self, uow: UserUnitOfWork, tokens: TokenIssuer, clock: Clock) -> None:
        self._uow, self._tokens, self._clock = uow, tokens, clock

    async def execute(self, token: str) -> None:
        # An access token is told apart without the database; the hint
        # (RFC 7009 §2.1) would save nothing.
        async with self._uow as uow:
            now = self._clock.now()
            session_id = self._session_of_access_token(token)
            if session_id is None:
                stored = await uow.refresh_tokens.get(OpaqueToken(token).digest)
                if stored is None or stored.spent_at is not None or stored.is_expired(now):
                    return
                session_id = stored.session_id
            session = await uow.sessions.get(session_id)
            if session is None or not session.is_live(now):
                return
            await uow.sessions.end(session_id, now)
            await uow.commit()
        audit("session.revoked", user_id=session.user_id, session_id=session_id)

    def _session_of_access_token(self, token: str) -> ID | None:
        try:
            return self._tokens.read(token).session_id
        except InvalidToken:
            return None
