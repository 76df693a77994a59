import uuid
from dataclasses import dataclass
from datetime import datetime

from app.core.entities import Session


@dataclass(frozen=True, slots=True)
class SessionDTO:
    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None
    current: bool  # the session of the token that asked

    @classmethod
    def from_entity(cls, session: Session, current: bool) -> "SessionDTO":
        return cls(
            id=session.id.value,
            created_at=session.created_at,
            last_used_at=session.last_used_at,
            expires_at=session.expires_at,
            user_agent=session.user_agent,
            current=current,
        )
