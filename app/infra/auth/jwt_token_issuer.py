import uuid
from typing import Any

from jose import JWTError, jwt

from app.core.dtos import AccessToken, TokenClaims
from app.core.entities import User
from app.core.exceptions import InvalidToken
from app.core.ports import Clock
from app.core.value_objects import ID

TOKEN_TYPE = "access"  # noqa: S105 (a claim value, not a secret)
# Far above any token we issue; refuses oversized input before any parsing.
MAX_TOKEN_LENGTH = 4096
# Verified tokens remembered, so a busy client's token is checked once, not per request.
VERIFIED_TOKENS_KEPT = 4096


class JwtTokenIssuer:
    """HS256 (by default) access tokens with an explicit algorithm allow-list.

    Besides the registered claims, `sid` names the session the token belongs
    to (ending the session ends the token), and `ver` carries the user's
    token version, so a password change revokes earlier tokens exactly,
    whatever the clock says.

    A token's signature and claims never change, so the result of verifying
    one is kept (keyed by the whole token, signature included) and only its
    expiry is checked again. Revocation is not decided here: the user is
    read afresh on every request.
    """

    def __init__(
        self,
        secret: str,
        algorithm: str,
        expire_minutes: int,
        clock: Clock,
        issuer: str | None = None,
        audience: str | None = None,
    ) -> None:
        self._secret, self._algorithm = secret, algorithm
        self._ttl = expire_minutes * 60
        self._clock, self._issuer, self._audience = clock, issuer, audience
        self._verified: dict[str, tuple[TokenClaims, float]] = {}

    def issue(self, user: User, session_id: ID) -> AccessToken:
        now = int(self._clock.now().timestamp())
        claims: dict[str, Any] = {
            "sub": str(user.id),
            "iat": now,
            "exp": now + self._ttl,
            "jti": uuid.uuid4().hex,
            "type": TOKEN_TYPE,
            "ver": user.token_version,
            "sid": str(session_id),
        }
        if self._issuer:
            claims["iss"] = self._issuer
        if self._audience:
            claims["aud"] = self._audience
        token = jwt.encode(claims, self._secret, algorithm=self._algorithm)
        return AccessToken(token=token, expires_in=self._ttl)

    def read(self, token: str) -> TokenClaims:
        known = self._verified.get(token)
        if known is None:
            known = self._verify(token)
            if len(self._verified) >= VERIFIED_TOKENS_KEPT:
                del self._verified[next(iter(self._verified))]  # the oldest
            self._verified[token] = known
        claims, expires_at = known
        # jose's rule: valid through the second `exp` names.
        if expires_at < int(self._clock.now().timestamp()):
            raise InvalidToken()
        return claims

    def _verify(self, token: str) -> tuple[TokenClaims, float]:
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken()
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={
                    "require_exp": True,
                    "require_sub": True,
                    "require_iat": True,
                    "require_jti": True,
                    "require_aud": self._audience is not None,
                    "require_iss": self._issuer is not None,
                },
            )
        except (JWTError, ValueError, TypeError, OverflowError):  # unreadable means invalid
            raise InvalidToken() from None
        version, expires_at, session_id = claims.get("ver"), claims.get("exp"), claims.get("sid")
        if claims.get("type") != TOKEN_TYPE or type(version) is not int:
            raise InvalidToken()
        if not isinstance(session_id, str):
            raise InvalidToken()
        if isinstance(expires_at, bool) or not isinstance(expires_at, int | float):
            raise InvalidToken()
        try:
            user_id, session = ID.parse(claims["sub"]), ID.parse(session_id)
        except ValueError:
            raise InvalidToken() from None
        claimed = TokenClaims(subject=user_id, token_version=version, session_id=session)
        return claimed, expires_at
