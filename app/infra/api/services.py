from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from app.core.entities import SessionPolicy
from app.core.ports import Clock, LoginThrottle, PasswordHasher, TokenIssuer, UserReader


@dataclass(frozen=True, slots=True)
class Services:
    """What lifespan builds once per process and every request shares."""

    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    reader: UserReader
    hasher: PasswordHasher
    tokens: TokenIssuer
    throttle: LoginThrottle
    clock: Clock
    sessions: SessionPolicy


def services_of(app: Starlette) -> Services:
    """The app's services: the one read of `app.state`, typed from here on."""
    services: Services = app.state.services
    return services
