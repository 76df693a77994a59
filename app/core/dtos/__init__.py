from app.core.dtos.auth import AccessToken, Credentials, TokenClaims
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
    "Credentials",
    "EmailMessage",
    "PasswordChange",
    "ProfileChanges",
    "RegisterInput",
    "TokenClaims",
    "UserDTO",
    "UserPage",
]
