from typing import Protocol

from app.core.dtos import AccessToken, TokenClaims
from app.core.entities import User
from app.core.value_objects import ID


class TokenIssuer(Protocol):
    def issue(self, user: User, session_id: ID) -> AccessToken:
        """An access token of `user`, in the session `session_id`."""
        ...

    def read(self, token: str) -> TokenClaims:
        """Raises InvalidToken for anything not issued by us, expired, of
        another type, or whose subject or session is not an id."""
        ...
