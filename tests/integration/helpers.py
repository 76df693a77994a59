"""Builders that integration tests share: users and sessions with every field chosen."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.entities import Session, User
from app.core.value_objects import ID, Email, HashedPassword, Name, Role
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
            session.ended_at = ended_at
        await uow.commit()
    return session


async def load_session(engine: AsyncEngine, session: Session) -> Session | None:
    async with uow_for(engine) as uow:
        return await uow.sessions.get(session.id)
