from typing import Protocol

from app.core.dtos import AccessToken, TokenClaims
from app.core.entities import User


class TokenIssuer(Protocol):
    def issue(self, user: User) -> AccessToken: ...

    def read(self, token: str) -> TokenClaims:
        """Raises InvalidToken for anything not issued by us, expired or of another type."""
        ...
