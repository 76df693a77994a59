from app.core.audit import audit
from app.core.dtos import Caller
from app.core.exceptions import SessionNotFound
from app.core.ports import Clock, UserUnitOfWork
from app.core.value_objects import ID


class EndSession:
    """Ends one of the caller's live sessions (a lost phone, say). Another
    user's session is as unknown as a missing one."""

    def __init__(self, uow: UserUnitOfWork, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    async def execute(self, caller: Caller, session_id: ID) -> None:
        async with self._uow as uow:
            now = self._clock.now()
            session = await uow.sessions.get(session_id)
            if session is None or session.user_id != ID(caller.user.id) or not session.is_live(now):
                raise SessionNotFound()
            await uow.sessions.end(session_id, now)
            await uow.commit()
        audit("session.ended", user_id=caller.user.id, session_id=session_id)
