"""One-time tokens, recovery mail requests (with the per-address cooldown)
and the outbox, inside a unit of work."""

import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.dtos import EmailMessage
from app.core.entities import OneTimeToken, TokenPurpose
from app.core.value_objects import ID, Email
from app.infra.db.engine import rows_changed
from app.infra.db.mapping import to_one_time_token, utc
from app.infra.db.models import (
    mail_cooldowns_table,
    mail_requests_table,
    one_time_tokens_table,
    outbox_table,
)

_T = one_time_tokens_table.c
_M = mail_requests_table.c
_C = mail_cooldowns_table.c


class SqlOneTimeTokenRepo:
    def __init__(self, session: AsyncSession) -> None:
        self._db = session

    async def add(self, token: OneTimeToken) -> None:
        await self._db.execute(
            insert(one_time_tokens_table).values(
                token_hash=token.digest,
                purpose=token.purpose.value,
                user_id=token.user_id.value,
                email=token.email,
                created_at=utc(token.created_at),
                expires_at=utc(token.expires_at),
                used_at=utc(token.used_at) if token.used_at else None,
                voided_at=utc(token.voided_at) if token.voided_at else None,
            )
        )

    async def get(self, digest: str, purpose: TokenPurpose) -> OneTimeToken | None:
        query = select(one_time_tokens_table).where(
            _T.token_hash == digest, _T.purpose == purpose.value
        )
        row = (await self._db.execute(query)).one_or_none()
        return to_one_time_token(row) if row else None

    async def use(self, digest: str, now: datetime) -> bool:
        result = await self._db.execute(
            update(one_time_tokens_table)
            .where(_T.token_hash == digest, _T.used_at.is_(None), _T.voided_at.is_(None))
            .values(used_at=utc(now))
        )
        return rows_changed(result) == 1

    async def void_all(self, user_id: ID, purpose: TokenPurpose | None, now: datetime) -> None:
        query = update(one_time_tokens_table).where(
            _T.user_id == user_id.value, _T.used_at.is_(None), _T.voided_at.is_(None)
        )
        if purpose is not None:
            query = query.where(_T.purpose == purpose.value)
        await self._db.execute(query.values(voided_at=utc(now)))


class SqlOutbox:
    def __init__(self, session: AsyncSession) -> None:
        self._db = session

    async def add(self, message: EmailMessage, now: datetime) -> None:
        await self._db.execute(
            insert(outbox_table).values(
                id=uuid.uuid4(),
                to_email=message.to,
                to_name=message.to_name,
                subject=message.subject,
                text_body=message.text,
                html_body=message.html,
                created_at=utc(now),
                attempts=0,
                next_attempt_at=utc(now),
            )
        )


class SqlMailRequests:
    def __init__(self, session: AsyncSession) -> None:
        self._db = session

    async def add(self, purpose: TokenPurpose, email: Email, now: datetime) -> None:
        await self._db.execute(
            insert(mail_requests_table).values(
                id=uuid.uuid4(), purpose=purpose.value, email=email.value, requested_at=utc(now)
            )
        )

    async def take(self) -> tuple[TokenPurpose, Email] | None:
        # SKIP LOCKED: processes taking requests at once take different ones.
        # (SQLite has no row locks; its writers take turns anyway.)
        oldest = (
            select(_M.id, _M.purpose, _M.email)
            .order_by(_M.requested_at, _M.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        row = (await self._db.execute(oldest)).one_or_none()
        if row is None:
            return None
        await self._db.execute(delete(mail_requests_table).where(_M.id == row.id))
        return TokenPurpose(row.purpose), Email(row.email)

    async def claim_cooldown(self, email: Email, now: datetime, cooldown: timedelta) -> bool:
        dialect = self._db.get_bind().dialect.name
        upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = upsert(mail_cooldowns_table).values(email=email.value, sent_at=utc(now))
        claimed = statement.on_conflict_do_update(
            index_elements=[_C.email],
            set_={"sent_at": statement.excluded.sent_at},
            where=_C.sent_at <= utc(now - cooldown),
        ).returning(_C.email)
        return (await self._db.execute(claimed)).first() is not None
