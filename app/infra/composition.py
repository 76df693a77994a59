"""Settings turned into the core's policies and the mail adapters: shared by
the server's lifespan (app/main.py) and the command line (app/cli.py)."""

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.core.entities import RecoveryPolicy, SessionPolicy
from app.core.ports import Clock, EmailSender
from app.core.usecases.send_requested_mail import SendRequestedMail
from app.infra.db.housekeeping import Housekeeping
from app.infra.db.request_limiter import SqlRequestLimiter
from app.infra.db.unit_of_work import SqlUserUnitOfWork
from app.infra.mail.console_sender import ConsoleEmailSender
from app.infra.mail.dispatcher import MailDispatcher
from app.infra.mail.memory_sender import MemoryEmailSender
from app.infra.mail.smtp_sender import SmtpEmailSender

RECOVERY_WINDOW_SECONDS = 3600  # RECOVERY_REQUESTS_PER_HOUR


def session_policy(settings: Settings) -> SessionPolicy:
    return SessionPolicy(
        refresh_token_ttl=timedelta(minutes=settings.REFRESH_TOKEN_EXPIRE_MINUTES),
        max_lifetime=timedelta(minutes=settings.SESSION_MAX_LIFETIME_MINUTES),
        reuse_interval=timedelta(seconds=settings.REFRESH_TOKEN_REUSE_INTERVAL_SECONDS),
        max_per_user=settings.MAX_SESSIONS_PER_USER,
    )


def recovery_policy(settings: Settings) -> RecoveryPolicy:
    return RecoveryPolicy(
        frontend_url=settings.frontend_url,
        reset_ttl=timedelta(minutes=settings.PASSWORD_RESET_TOKEN_EXPIRE_MINUTES),
        verification_ttl=timedelta(minutes=settings.EMAIL_VERIFICATION_TOKEN_EXPIRE_MINUTES),
        cooldown=timedelta(seconds=settings.RECOVERY_EMAIL_COOLDOWN_SECONDS),
        require_verified_email=settings.REQUIRE_VERIFIED_EMAIL,
    )


def recovery_limiter(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock
) -> SqlRequestLimiter:
    return SqlRequestLimiter(
        sessionmaker,
        clock,
        prefix="recovery:",
        limit=settings.RECOVERY_REQUESTS_PER_HOUR,
        window_seconds=RECOVERY_WINDOW_SECONDS,
    )


def email_sender(settings: Settings) -> EmailSender:
    if settings.EMAIL_BACKEND == "smtp":
        assert settings.SMTP_HOST is not None  # Settings refuses smtp without it
        return SmtpEmailSender(
            host=settings.SMTP_HOST,
            port=settings.SMTP_PORT,
            username=settings.SMTP_USER,
            password=settings.SMTP_PASSWORD,
            starttls=settings.SMTP_STARTTLS,
            ssl=settings.SMTP_SSL,
            timeout=settings.SMTP_TIMEOUT_SECONDS,
            from_email=settings.emails_from,
            from_name=settings.EMAILS_FROM_NAME,
        )
    if settings.EMAIL_BACKEND == "memory":
        return MemoryEmailSender()
    return ConsoleEmailSender()


def mail_dispatcher(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    sender: EmailSender,
    clock: Clock,
) -> MailDispatcher:
    policy = recovery_policy(settings)
    return MailDispatcher(
        sessionmaker,
        sender,
        clock,
        lambda: SendRequestedMail(SqlUserUnitOfWork(sessionmaker), clock, policy),
        max_attempts=settings.EMAIL_MAX_ATTEMPTS,
        # A claimed row is claimed again only if its send could not have
        # finished: an SMTP send is a handful of steps, each within the timeout.
        lease=timedelta(seconds=max(60.0, 10 * settings.SMTP_TIMEOUT_SECONDS)),
    )


def housekeeping(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock
) -> Housekeeping:
    return Housekeeping(
        sessionmaker,
        clock,
        batch_size=settings.CLEANUP_BATCH_SIZE,
        cooldown=timedelta(seconds=settings.RECOVERY_EMAIL_COOLDOWN_SECONDS),
        counter_window=timedelta(seconds=RECOVERY_WINDOW_SECONDS),
    )
