"""Table models. They never leave infra/db: repositories map them to entities."""

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    false,
    func,
    text,
)
from sqlmodel import Field, SQLModel

# Stable constraint names, so migrations read the same on SQLite and PostgreSQL.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


class UserRow(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = (
        # Keyset pagination walks this index in order.
        Index("ix_users_created_at_id", "created_at", "id"),
        CheckConstraint("role IN ('user', 'admin')", name="role"),
    )

    id: uuid.UUID = Field(sa_column=Column(Uuid, primary_key=True))
    email: str = Field(sa_column=Column(String(254), nullable=False, unique=True))
    name: str = Field(sa_column=Column(String(100), nullable=False))
    hashed_password: str = Field(sa_column=Column(String(255), nullable=False))
    role: str = Field(sa_column=Column(String(16), nullable=False))
    is_active: bool = Field(sa_column=Column(Boolean, nullable=False))
    token_version: int = Field(sa_column=Column(Integer, nullable=False))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    email_verified: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )


# SQLModel leaves `__table__` untyped: column expressions use these typed tables.
users_table: Table = metadata.tables[UserRow.__tablename__]

# The admin's email prefix search (`lower(email) LIKE 'prefix%'`). PostgreSQL
# only: a btree in the database collation cannot serve LIKE (unless it is C);
# one with the pattern operator class can. Migration 0002 skips SQLite, and
# autogenerate skips expression indexes there.
Index(
    "ix_users_email_pattern",
    func.lower(users_table.c.email).label("email_lower"),
    postgresql_ops={"email_lower": "text_pattern_ops"},
).ddl_if(dialect="postgresql")


class LoginAttemptRow(SQLModel, table=True):
    """Failed logins per normalised username; epoch seconds keep the SQL portable."""

    __tablename__ = "login_attempts"

    username: str = Field(sa_column=Column(String(254), primary_key=True))
    failures: int = Field(sa_column=Column(Integer, nullable=False))
    window_started_at: float = Field(sa_column=Column(Float, nullable=False))
    locked_until: float | None = Field(default=None, sa_column=Column(Float, nullable=True))


login_attempts_table: Table = metadata.tables[LoginAttemptRow.__tablename__]


class SessionRow(SQLModel, table=True):
    """One login; ended by setting `ended_at`, never by deleting (purged later)."""

    __tablename__ = "sessions"
    __table_args__ = (
        # A user's sessions, newest first (listing, the per-user cap, ending all).
        Index("ix_sessions_user_id_created_at", "user_id", "created_at"),
    )

    id: uuid.UUID = Field(sa_column=Column(Uuid, primary_key=True))
    user_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    last_used_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    expires_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True)
    )
    ended_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    user_agent: str | None = Field(default=None, sa_column=Column(String(256), nullable=True))


sessions_table: Table = metadata.tables[SessionRow.__tablename__]


class RefreshTokenRow(SQLModel, table=True):
    """A refresh token by its SHA-256 (hex): the token itself is never stored."""

    __tablename__ = "refresh_tokens"

    token_hash: str = Field(sa_column=Column(String(64), primary_key=True))
    session_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid, ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    issued_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    expires_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True)
    )
    spent_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    respent: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))


refresh_tokens_table: Table = metadata.tables[RefreshTokenRow.__tablename__]


class OneTimeTokenRow(SQLModel, table=True):
    """A reset or verification token by its SHA-256 (hex), never the token."""

    __tablename__ = "one_time_tokens"
    __table_args__ = (
        Index("ix_one_time_tokens_user_id_purpose", "user_id", "purpose"),
        CheckConstraint("purpose IN ('password_reset', 'email_verification')", name="purpose"),
    )

    token_hash: str = Field(sa_column=Column(String(64), primary_key=True))
    purpose: str = Field(sa_column=Column(String(32), nullable=False))
    user_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    email: str = Field(sa_column=Column(String(254), nullable=False))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    expires_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True)
    )
    used_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    voided_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


one_time_tokens_table: Table = metadata.tables[OneTimeTokenRow.__tablename__]


class MailRequestRow(SQLModel, table=True):
    """A recovery mail asked for, not yet turned into a mail (or nothing)."""

    __tablename__ = "mail_requests"

    id: uuid.UUID = Field(sa_column=Column(Uuid, primary_key=True))
    purpose: str = Field(sa_column=Column(String(32), nullable=False))
    email: str = Field(sa_column=Column(String(254), nullable=False))
    requested_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True)
    )


mail_requests_table: Table = metadata.tables[MailRequestRow.__tablename__]


class MailCooldownRow(SQLModel, table=True):
    """When the last recovery mail went to an address."""

    __tablename__ = "mail_cooldowns"

    email: str = Field(sa_column=Column(String(254), primary_key=True))
    sent_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


mail_cooldowns_table: Table = metadata.tables[MailCooldownRow.__tablename__]


class OutboxRow(SQLModel, table=True):
    """A mail to send. Once sent, its body (which may hold a link) is cleared."""

    __tablename__ = "outbox"
    __table_args__ = (
        # The dispatcher's query: pending rows whose time has come.
        Index(
            "ix_outbox_pending",
            "next_attempt_at",
            postgresql_where=text("sent_at IS NULL AND failed_at IS NULL"),
        ),
    )

    id: uuid.UUID = Field(sa_column=Column(Uuid, primary_key=True))
    to_email: str = Field(sa_column=Column(String(254), nullable=False))
    to_name: str | None = Field(default=None, sa_column=Column(String(100), nullable=True))
    subject: str = Field(sa_column=Column(String(200), nullable=False))
    text_body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    html_body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    attempts: int = Field(sa_column=Column(Integer, nullable=False))
    next_attempt_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    sent_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    failed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    last_error: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))


outbox_table: Table = metadata.tables[OutboxRow.__tablename__]


class RequestCounterRow(SQLModel, table=True):
    """Requests per key (a client address) in a fixed window; epoch seconds."""

    __tablename__ = "request_counters"

    key: str = Field(sa_column=Column(String(100), primary_key=True))
    count: int = Field(sa_column=Column(Integer, nullable=False))
    window_started_at: float = Field(sa_column=Column(Float, nullable=False))


request_counters_table: Table = metadata.tables[RequestCounterRow.__tablename__]
