from app.core.entities.one_time_token import OneTimeToken, RecoveryPolicy, TokenPurpose
from app.core.entities.session import RefreshToken, Session, SessionPolicy
from app.core.entities.user import User

__all__ = [
    "OneTimeToken",
    "RecoveryPolicy",
    "RefreshToken",
    "Session",
    "SessionPolicy",
    "TokenPurpose",
    "User",
]
