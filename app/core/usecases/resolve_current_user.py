from app.core.dtos import UserDTO
from app.core.exceptions import InvalidToken, Unauthenticated
from app.core.ports import TokenIssuer, UserReader
from app.core.value_objects import ID


class ResolveCurrentUser:
    """Turns a bearer token into the user it speaks for.

    The user is read afresh on every request: a deleted or deactivated user,
    or a token issued before the last password change, is refused; a role
    change applies at once.
    """

    def __init__(self, users: UserReader, tokens: TokenIssuer) -> None:
        self._users, self._tokens = users, tokens

    async def execute(self, token: str | None) -> UserDTO:
        """`token` is the bearer token of the request, None when it has none."""
        if not token:
            raise Unauthenticated()
        claims = self._tokens.read(token)
        try:
            user_id = ID.parse(claims.subject)
        except ValueError:
            raise InvalidToken() from None
        user = await self._users.get_by_id(user_id)
        if user is None or not user.is_active or user.token_version != claims.token_version:
            raise InvalidToken()
        return UserDTO.from_entity(user)
