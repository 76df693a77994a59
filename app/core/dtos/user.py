import uuid
from dataclasses import dataclass, field
from datetime import datetime

from app.core.entities import User
from app.core.value_objects import Role


@dataclass(frozen=True, slots=True)
class UserDTO:
    id: uuid.UUID
    name: str
    email: str
    role: str
    is_active: bool
    email_verified: bool
    created_at: datetime
    updated_at: datetime

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN.value

    @classmethod
    def from_entity(cls, user: User) -> "UserDTO":
        return cls(
            id=user.id.value,
            name=user.name.value,
            email=user.email.value,
            role=user.role.value,
            is_active=user.is_active,
            email_verified=user.email_verified,
            created_at=user.created_at,
            updated_at=user.updated_at,
        )


@dataclass(frozen=True, slots=True)
class UserPage:
    items: list[UserDTO]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class RegisterInput:
    email: str
    password: str = field(repr=False)
    name: str


@dataclass(frozen=True, slots=True)
class ProfileChanges:
    name: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class AdminChanges:
    name: str | None = None
    email: str | None = None
    role: str | None = None
    is_active: bool | None = None


@dataclass(frozen=True, slots=True)
class PasswordChange:
    current_password: str = field(repr=False)
    new_password: str = field(repr=False)
