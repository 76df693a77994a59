from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.infra.db.repositories.account_mail_repo import (
    SqlMailRequests,
    SqlOneTimeTokenRepo,
    SqlOutbox,
)
from app.infra.db.repositories.session_repo import SqlRefreshTokenRepo, SqlSessionRepo
from app.infra.db.repositories.user_repo import SqlUserRepo


class SqlUserUnitOfWork:
    """One AsyncSession per `async with` block; never shared across tasks."""

    users: SqlUserRepo
    sessions: SqlSessionRepo
    refresh_tokens: SqlRefreshTokenRepo
    one_time_tokens: SqlOneTimeTokenRepo
    outbox: SqlOutbox
    mail_requests: SqlMailRequests

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._session: AsyncSession | None = None

    async def __aenter__(self) -> Self:
        self._session = self._sessionmaker()
        self.users = SqlUserRepo(self._session)
        self.sessions = SqlSessionRepo(self._session)
        self.refresh_tokens = SqlRefreshTokenRepo(self._session)
        self.one_time_tokens = SqlOneTimeTokenRepo(self._session)
        self.outbox = SqlOutbox(self._session)
        self.mail_requests = SqlMailRequests(self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._require_session(), None
        await session.close()  # rolls back whatever was not committed

    async def commit(self) -> None:
        await self._require_session().commit()

    async def rollback(self) -> None:
        await self._require_session().rollback()

    def _require_session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("unit of work used outside `async with`")
        return self._session
