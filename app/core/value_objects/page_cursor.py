import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from app.core.exceptions import InvalidCursor
from app.core.value_objects.id import ID

MAX_CURSOR_LENGTH = 200


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Position in the (created_at, id) order; opaque to clients."""

    created_at: datetime
    id: ID

    def encode(self) -> str:
        raw = json.dumps([self.created_at.isoformat(), self.id.value.hex], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> "PageCursor":
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise InvalidCursor()
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            created_at, id_hex = json.loads(raw)
            if not (isinstance(created_at, str) and isinstance(id_hex, str)):
                raise InvalidCursor()
            moment = datetime.fromisoformat(created_at)
            if moment.tzinfo is None:
                raise InvalidCursor()
            # In UTC, as stored; a moment beyond year 1..9999 in UTC is refused.
            return cls(moment.astimezone(UTC), ID(uuid.UUID(hex=id_hex)))
        except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, OverflowError) as exc:
            raise InvalidCursor() from exc
