"""Builders that integration tests share: users, sessions, refresh tokens,
one-time tokens and mail with every field chosen."""

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.dtos import EmailMessage
from app.core.entities import OneTimeToken, RefreshToken, Session, TokenPurpose, User
from app.core.value_objects import ID, Email, HashedPassword, Name, Role
from app.core.value_objects.opaque_token import OpaqueToken
from app.infra.db.engine import create_sessionmaker
from app.infra.db.unit_of_work import SqlUserUnitOfWork

# Microseconds on purpose: the round trip must keep them.
T0 = datetime(2026, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)
HASH = "$2b$04$abcdefghijklmnopqrstuuJ0aCw5mR1vS8pQ9zX2yT7uV6wK3lN4e"


def a_user(
    email: str = "ann@example.com",
    name: str = "Ann",
    *,
    role: Role = Role.USER,
    is_active: bool = True,
    created_at: datetime = T0,
    updated_at: datetime | None = None,
    hashed_password: str = HASH,
    token_version: int = 0,
    email_verified: bool = False,
    user_id: uuid.UUID | None = None,
) -> User:
    return User(
        id=ID(user_id or uuid.uuid4()),
        email=Email(email),
        name=Name(name),
        hashed_password=HashedPassword(hashed_password),
        role=role,
        is_active=is_active,
        created_at=created_at,
        updated_at=updated_at or created_at,
        token_version=token_version,
        email_verified=email_verified,
    )


def fields(user: User) -> tuple[object, ...]:
    """Every stored field, since `User.__eq__` compares ids only."""
    return (
        user.id,
        user.email,
        user.name,
        user.hashed_password,
        user.role,
        user.is_active,
        user.created_at,
        user.updated_at,
        user.token_version,
        user.email_verified,
    )


def uow_for(engine: AsyncEngine) -> SqlUserUnitOfWork:
    return SqlUserUnitOfWork(create_sessionmaker(engine))


async def save(engine: AsyncEngine, *users: User) -> None:
    async with uow_for(engine) as uow:
        for user in users:
            await uow.users.add(user)
        await uow.commit()


async def load(engine: AsyncEngine, user: User) -> User | None:
    """Reads `user` back through a fresh unit of work, so nothing is cached."""
    async with uow_for(engine) as uow:
        return await uow.users.get_by_id(user.id)


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def a_session(
    user: User,
    *,
    created_at: datetime = T0,
    lifetime: timedelta = timedelta(days=30),
    user_agent: str | None = "Mozilla/5.0 (X11; Linux x86_64)",
) -> Session:
    """A live session of `user`, as a login at `created_at` starts it."""
    return Session(
        id=ID.new(),
        user_id=user.id,
        created_at=created_at,
        last_used_at=created_at,
        expires_at=created_at + lifetime,
        ended_at=None,
        user_agent=user_agent,
    )


def session_fields(session: Session) -> tuple[object, ...]:
    """Every stored field, since a `Session` compares by identity."""
    return (
        session.id,
        session.user_id,
        session.created_at,
        session.last_used_at,
        session.expires_at,
        session.ended_at,
        session.user_agent,
    )


async def save_sessions(engine: AsyncEngine, *sessions: Session) -> None:
    async with uow_for(engine) as uow:
        for session in sessions:
            await uow.sessions.add(session)
        await uow.commit()


async def store_session(
    engine: AsyncEngine,
    user: User,
    *,
    created_at: datetime = T0,
    lifetime: timedelta = timedelta(days=30),
    ended_at: datetime | None = None,
) -> Session:
    """Stores a session of `user` (already saved), ended at `ended_at` if given,
    through the repository as the app does: a session is added live, then ended."""
    session = a_session(user, created_at=created_at, lifetime=lifetime)
    async with uow_for(engine) as uow:
        await uow.sessions.add(session)
        if ended_at is not None:
            await uow.sessions.end(session.id, ended_at)
            session = dataclasses.replace(session, ended_at=ended_at)
        await uow.commit()
    return session


async def load_session(engine: AsyncEngine, session: Session) -> Session | None:
    async with uow_for(engine) as uow:
        return await uow.sessions.get(session.id)


def a_token(session: Session, issued_at: datetime = T0) -> RefreshToken:
    """An unspent refresh token of `session`, good for 7 days."""
    return RefreshToken(
        digest=OpaqueToken.new().digest,
        session_id=session.id,
        issued_at=issued_at,
        expires_at=issued_at + timedelta(days=7),
    )


def token_fields(token: RefreshToken) -> tuple[object, ...]:
    """Every stored field, since a `RefreshToken` compares by identity."""
    return (
        token.digest,
        token.session_id,
        token.issued_at,
        token.expires_at,
        token.spent_at,
        token.respent,
    )


async def save_tokens(engine: AsyncEngine, *tokens: RefreshToken) -> None:
    async with uow_for(engine) as uow:
        for token in tokens:
            await uow.refresh_tokens.add(token)
        await uow.commit()


async def load_token(engine: AsyncEngine, token: RefreshToken) -> RefreshToken | None:
    async with uow_for(engine) as uow:
        return await uow.refresh_tokens.get(token.digest)


def a_one_time_token(
    user: User,
    purpose: TokenPurpose = TokenPurpose.PASSWORD_RESET,
    *,
    created_at: datetime = T0,
    ttl: timedelta = timedelta(minutes=30),
) -> OneTimeToken:
    """A fresh token of `user`, sent to their current address at `created_at`."""
    return OneTimeToken.issue(OpaqueToken.new().digest, purpose, user, created_at, ttl)


def one_time_token_fields(token: OneTimeToken) -> tuple[object, ...]:
    """Every stored field, since a `OneTimeToken` compares by identity."""
    return (
        token.digest,
        token.purpose,
        token.user_id,
        token.email,
        token.created_at,
        token.expires_at,
        token.used_at,
        token.voided_at,
    )


async def save_one_time_tokens(engine: AsyncEngine, *tokens: OneTimeToken) -> None:
    async with uow_for(engine) as uow:
        for token in tokens:
            await uow.one_time_tokens.add(token)
        await uow.commit()


async def load_one_time_token(engine: AsyncEngine, token: OneTimeToken) -> OneTimeToken | None:
    async with uow_for(engine) as uow:
        return await uow.one_time_tokens.get(token.digest, token.purpose)


def a_message(to: str = "ann@example.com", subject: str = "Reset your password") -> EmailMessage:
    link = f"https://app.example/reset-password#token={OpaqueToken.new().value}"
    return EmailMessage(
        to=to,
        to_name="Ann Ångström",
        subject=subject,
        text=f"Hello,\n\nOpen {link}\n",
        html=f'<p>Hello,</p>\n<p><a href="{link}">Reset your password</a></p>\n',
    )
