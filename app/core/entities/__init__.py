from app.core.entities.session import RefreshToken, Session, SessionPolicy
from app.core.entities.user import User

__all__ = ["RefreshToken", "Session", "SessionPolicy", "User"]
