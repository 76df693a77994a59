from types import TracebackType
from typing import Protocol, Self

from app.core.ports.account_mail import MailRequests, OneTimeTokenRepo, Outbox
from app.core.ports.session_repo import RefreshTokenRepo, SessionRepo
from app.core.ports.user_repo import UserRepo


class UnitOfWork(Protocol):
    """One transaction. Leaving the block without `commit()` rolls back."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class UserUnitOfWork(UnitOfWork, Protocol):
    @property
    def users(self) -> UserRepo: ...

    @property
    def sessions(self) -> SessionRepo: ...

    @property
    def refresh_tokens(self) -> RefreshTokenRepo: ...

    @property
    def one_time_tokens(self) -> OneTimeTokenRepo: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def mail_requests(self) -> MailRequests: ...
