from app.core.dtos import Caller
from app.core.dtos.session import SessionDTO
from app.core.ports import Clock, UserUnitOfWork
from app.core.value_objects import ID


class ListSessions:
    """The caller's live sessions, newest first, marking the one it asks through."""

    def __init__(self, uow: UserUnitOfWork, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    async def execute(self, caller: Caller) -> list[SessionDTO]:
        async with self._uow as uow:
            sessions = await uow.sessions.list_live(ID(caller.user.id), self._clock.now())
        return [SessionDTO.from_entity(s, current=s.id == caller.session_id) for s in sessions]
