from app.core.dtos import Caller, UserDTO
from app.core.exceptions import InvalidToken, Unauthenticated
from app.core.ports import Clock, TokenIssuer, UserReader


class ResolveCurrentUser:
    """Turns a bearer token into the user it speaks for, and its session.

    The session and the user are read afresh on every request, in one read:
    an ended or expired session, a deleted or deactivated user, or a token
    issued before the last password change is refused at once, in every
    process; a role change applies at once.
    """

    def __init__(self, users: UserReader, tokens: TokenIssuer, clock: Clock) -> None:
        self._users, self._tokens, self._clock = users, tokens, clock

    async def execute(self, token: str | None) -> Caller:
        """`token` is the bearer token of the request, None when it has none."""
        if not token:
            raise Unauthenticated()
        claims = self._tokens.read(token)
        user_id, session_id = claims.subject, claims.session_id
        found = await self._users.get_with_session(session_id)
        if found is None:
            raise InvalidToken()
        user, session = found
        if (
            session.user_id != user_id
            or not session.is_live(self._clock.now())
            or not user.is_active
            or user.token_version != claims.token_version
        ):
            raise InvalidToken()
        return Caller(UserDTO.from_entity(user), session_id)
