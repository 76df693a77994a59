"""Rows to entities and back, shared by the repository and the reader."""

import uuid
from datetime import UTC, datetime
from typing import Protocol

from app.core.entities import User
from app.core.value_objects import ID, Email, HashedPassword, Name, Role
from app.infra.db.models import UserRow


class UserRecord(Protocol):
    """A `users` row: an ORM UserRow or a Core result row."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def email(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def hashed_password(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def is_active(self) -> bool: ...
    @property
    def token_version(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...


def utc(moment: datetime) -> datetime:
    # SQLite stores wall-clock time without an offset: store UTC, read back as UTC.
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def to_entity(row: UserRecord) -> User:
    return User(
        id=ID(row.id),
        email=Email(row.email),
        name=Name(row.name),
        hashed_password=HashedPassword(row.hashed_password),
        role=Role(row.role),
        is_active=bool(row.is_active),
        created_at=utc(row.created_at),
        updated_at=utc(row.updated_at),
        token_version=row.token_version,
    )


def to_row(user: User) -> UserRow:
    return UserRow(
        id=user.id.value,
        email=user.email.value,
        name=user.name.value,
        hashed_password=user.hashed_password.value,
        role=user.role.value,
        is_active=user.is_active,
        token_version=user.token_version,
        created_at=utc(user.created_at),
        updated_at=utc(user.updated_at),
    )
