from app.core.dtos.auth import AccessToken, Caller, Credentials, TokenClaims, TokenPair
from app.core.dtos.email import EmailMessage
from app.core.dtos.user import (
    AdminChanges,
    PasswordChange,
    ProfileChanges,
    RegisterInput,
    UserDTO,
    UserPage,
)

__all__ = [
    "AccessToken",
    "AdminChanges",
    "Caller",
    "Credentials",
    "EmailMessage",
    "PasswordChange",
    "ProfileChanges",
    "RegisterInput",
    "TokenClaims",
    "TokenPair",
    "UserDTO",
    "UserPage",
]
