from app.core.entities.user import User

__all__ = ["User"]
