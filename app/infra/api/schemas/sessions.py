import uuid
from datetime import datetime

from pydantic import BaseModel

from app.core.dtos.session import SessionDTO


class SessionResponse(BaseModel):
    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None
    current: bool

    @classmethod
    def from_dto(cls, session: SessionDTO) -> "SessionResponse":
        return cls(
            id=session.id,
            created_at=session.created_at,
            last_used_at=session.last_used_at,
            expires_at=session.expires_at,
            user_agent=session.user_agent,
            current=session.current,
        )


class SessionListResponse(BaseModel):
    items: list[SessionResponse]
