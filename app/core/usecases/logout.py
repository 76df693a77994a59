from app.core.audit import audit
from app.core.dtos import Caller
from app.core.ports import Clock, UserUnitOfWork


class Logout:
    """Ends the caller's session: its access and refresh tokens stop at once."""

    def __init__(self, uow: UserUnitOfWork, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    async def execute(self, caller: Caller) -> None:
        async with self._uow as uow:
            await uow.sessions.end(caller.session_id, self._clock.now())
            await uow.commit()
        audit("session.logged_out", user_id=caller.user.id, session_id=caller.session_id)
