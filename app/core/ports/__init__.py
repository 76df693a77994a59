from app.core.ports.account_mail import (
    MailRequests,
    OneTimeTokenRepo,
    Outbox,
    RequestLimiter,
)
from app.core.ports.clock import Clock
from app.core.ports.email_sender import EmailSender
from app.core.ports.login_throttle import LoginThrottle
from app.core.ports.password_hasher import PasswordHasher
from app.core.ports.refresh_grants import HeldRefreshToken, RefreshGrant, RefreshGrants
from app.core.ports.session_repo import RefreshTokenRepo, SessionRepo
from app.core.ports.token_issuer import TokenIssuer
from app.core.ports.unit_of_work import UnitOfWork, UserUnitOfWork
from app.core.ports.user_reader import UserReader
from app.core.ports.user_repo import UserRepo

__all__ = [
    "Clock",
    "EmailSender",
    "HeldRefreshToken",
    "LoginThrottle",
    "MailRequests",
    "OneTimeTokenRepo",
    "Outbox",
    "PasswordHasher",
    "RefreshGrant",
    "RefreshGrants",
    "RefreshTokenRepo",
    "RequestLimiter",
    "SessionRepo",
    "TokenIssuer",
    "UnitOfWork",
    "UserReader",
    "UserRepo",
    "UserUnitOfWork",
]
