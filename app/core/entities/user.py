from dataclasses import dataclass, field
from datetime import datetime

from app.core.value_objects import ID, Email, HashedPassword, Name, Role


@dataclass(eq=False, slots=True)
class User:
    """A person with an account. Changed only through its methods, which take `now`.

    `token_version` counts what ends every token of the user (a password
    change, a deactivation, a demotion): an access token carries the version
    it was issued under, and any other version is revoked, so reactivating or
    re-promoting a user brings no old token back. A counter rather than a
    timestamp, because `iat` has one-second resolution.
    """

    id: ID
    email: Email
    name: Name
    hashed_password: HashedPassword = field(repr=False)
    role: Role
    is_active: bool
    created_at: datetime
    updated_at: datetime
    token_version: int = 0
    email_verified: bool = False

    @classmethod
    def register(
        cls,
        email: Email,
        name: Name,
        hashed_password: HashedPassword,
        now: datetime,
        role: Role = Role.USER,
        email_verified: bool = False,
    ) -> "User":
        return cls(
            id=ID.new(),
            email=email,
            name=name,
            hashed_password=hashed_password,
            role=role,
            is_active=True,
            created_at=now,
            updated_at=now,
            email_verified=email_verified,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, User) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def is_active_admin(self) -> bool:
        return self.is_active and self.is_admin

    def rename(self, name: Name, now: datetime) -> None:
        if name != self.name:
            self.name = name
            self.updated_at = now

    def change_email(self, email: Email, now: datetime) -> bool:
        """A new address is unverified until a link sent to it is opened.
        True when the email changed."""
        if email == self.email:
            return False
        self.email = email
        self.email_verified = False
        self.updated_at = now
        return True

    def verify_email(self, now: datetime) -> None:
        if not self.email_verified:
            self.email_verified = True
            self.updated_at = now

    def change_password(self, hashed_password: HashedPassword, now: datetime) -> None:
        """Every token issued before this call stops working."""
        self.hashed_password = hashed_password
        self._end_tokens(now)

    def change_role(self, role: Role, now: datetime) -> None:
        """A demotion ends every token: the user logs in again as what it is now."""
        if role is not self.role:
            demoted = self.is_admin
            self.role = role
            self.updated_at = now
            if demoted:
                self._end_tokens(now)

    def activate(self, now: datetime) -> None:
        if not self.is_active:
            self.is_active = True
            self.updated_at = now

    def deactivate(self, now: datetime) -> None:
        """Ends every token for good: reactivation does not bring them back."""
        if self.is_active:
            self.is_active = False
            self._end_tokens(now)

    def _end_tokens(self, now: datetime) -> None:
        self.token_version += 1
        self.updated_at = now
