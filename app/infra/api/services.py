from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from app.core.entities import RecoveryPolicy, SessionPolicy
from app.core.ports import (
    Clock,
    EmailSender,
    LoginThrottle,
    PasswordHasher,
    RefreshGrants,
    RequestLimiter,
    TokenIssuer,
    UserReader,
)
from app.infra.mail.dispatcher import MailDispatcher
from app.infra.metrics import Metrics


@dataclass(frozen=True, slots=True)
class Services:
    """What lifespan builds once per process and every request shares."""

    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    reader: UserReader
    refresh_grants: RefreshGrants
    hasher: PasswordHasher
    tokens: TokenIssuer
    throttle: LoginThrottle
    clock: Clock
    sessions: SessionPolicy
    recovery: RecoveryPolicy
    limiter: RequestLimiter  # recovery requests per client
    mail: MailDispatcher
    mail_sender: EmailSender  # the dispatcher's: tests read what a MemoryEmailSender got
    metrics: Metrics | None = None  # METRICS_ENABLED


def services_of(app: Starlette) -> Services:
    """The app's services: the one read of `app.state`, typed from here on."""
    services: Services = app.state.services
    return services
