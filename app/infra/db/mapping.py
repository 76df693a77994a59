"""Rows to entities and back, shared by the repository and the reader."""

import uuid
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

from app.core.entities import OneTimeToken, RefreshToken, Session, TokenPurpose, User
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
    def email_verified(self) -> bool: ...
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
        email_verified=bool(row.email_verified),
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
        email_verified=user.email_verified,
        created_at=utc(user.created_at),
        updated_at=utc(user.updated_at),
    )


class SessionRecord(Protocol):
    """A `sessions` row (or a row carrying its columns under these names)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def user_id(self) -> uuid.UUID: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def last_used_at(self) -> datetime: ...
    @property
    def expires_at(self) -> datetime: ...
    @property
    def ended_at(self) -> datetime | None: ...
    @property
    def user_agent(self) -> str | None: ...


def to_session(row: SessionRecord) -> Session:
    return Session(
        id=ID(row.id),
        user_id=ID(row.user_id),
        created_at=utc(row.created_at),
        last_used_at=utc(row.last_used_at),
        expires_at=utc(row.expires_at),
        ended_at=utc(row.ended_at) if row.ended_at else None,
        user_agent=row.user_agent,
    )


class RefreshTokenRecord(Protocol):
    @property
    def token_hash(self) -> str: ...
    @property
    def session_id(self) -> uuid.UUID: ...
    @property
    def issued_at(self) -> datetime: ...
    @property
    def expires_at(self) -> datetime: ...
    @property
    def spent_at(self) -> datetime | None: ...
    @property
    def respent(self) -> bool: ...


def to_refresh_token(row: RefreshTokenRecord) -> RefreshToken:
    return RefreshToken(
        digest=row.token_hash,
        session_id=ID(row.session_id),
        issued_at=utc(row.issued_at),
        expires_at=utc(row.expires_at),
        spent_at=utc(row.spent_at) if row.spent_at else None,
        respent=bool(row.respent),
    )


class UserTuple(NamedTuple):
    """A UserRecord by position: the `users` columns in this order."""

    id: uuid.UUID
    email: str
    name: str
    hashed_password: str
    role: str
    is_active: bool
    token_version: int
    email_verified: bool
    created_at: Any
    updated_at: Any


class SessionTuple(NamedTuple):
    """A SessionRecord by position: the `sessions` columns in this order."""

    id: uuid.UUID
    user_id: uuid.UUID
    created_at: Any
    last_used_at: Any
    expires_at: Any
    ended_at: Any
    user_agent: str | None


class RefreshTokenTuple(NamedTuple):
    """A RefreshTokenRecord by position: the `refresh_tokens` columns in this order."""

    token_hash: str
    session_id: uuid.UUID
    issued_at: Any
    expires_at: Any
    spent_at: Any
    respent: bool


class OneTimeTokenRecord(Protocol):
    @property
    def token_hash(self) -> str: ...
    @property
    def purpose(self) -> str: ...
    @property
    def user_id(self) -> uuid.UUID: ...
    @property
    def email(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def expires_at(self) -> datetime: ...
    @property
    def used_at(self) -> datetime | None: ...
    @property
    def voided_at(self) -> datetime | None: ...


def to_one_time_token(row: OneTimeTokenRecord) -> OneTimeToken:
    return OneTimeToken(
        digest=row.token_hash,
        purpose=TokenPurpose(row.purpose),
        user_id=ID(row.user_id),
        email=row.email,
        created_at=utc(row.created_at),
        expires_at=utc(row.expires_at),
        used_at=utc(row.used_at) if row.used_at else None,
        voided_at=utc(row.voided_at) if row.voided_at else None,
    )
