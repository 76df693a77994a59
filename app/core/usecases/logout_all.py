from app.core.audit import audit
from app.core.dtos import Caller
from app.core.ports import Clock, UserUnitOfWork
from app.core.value_objects import ID


class LogoutAll:
    """Ends every session of the caller, on every device."""

    def __init__(self, uow: UserUnitOfWork, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    async def execute(self, caller: Caller) -> None:
        async with self._uow as uow:
            await uow.sessions.end_all(ID(caller.user.id), self._clock.now())
            await uow.commit()
        audit("session.logged_out_everywhere", user_id=caller.user.id)
