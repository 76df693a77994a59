import hashlib
import secrets
from dataclasses import dataclass, field

TOKEN_BYTES = 32


@dataclass(frozen=True, slots=True)
class OpaqueToken:
    """A bearer secret handed to a client once (a refresh token, a reset
    link's token): 32 random bytes, URL-safe base64. Only its SHA-256 is
    stored, so the database never holds a usable token; a token as the
    client presents it is looked up by that digest, whatever its shape."""

    value: str = field(repr=False)

    @classmethod
    def new(cls) -> "OpaqueToken":
        return cls(secrets.token_urlsafe(TOKEN_BYTES))

    @property
    def digest(self) -> str:
        # "surrogatepass": whatever the client sent digests to something, and matches nothing.
        return hashlib.sha256(self.value.encode("utf-8", "surrogatepass")).hexdigest()
