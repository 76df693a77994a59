import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.core.entities import Session, User
from app.core.value_objects import ID
from app.infra.db.mapping import to_entity, to_session
from app.infra.db.rows_by_session import (
    AsyncpgRowsBySession,
    RowsBySession,
    SqliteRowsBySession,
    SqlRowsBySession,
)

_Found = tuple[User, Session] | None
_Waiting = dict[uuid.UUID, list[asyncio.Future[_Found]]]


class BatchedUserReader:
    """A UserReader that answers concurrent lookups (by session id) with few queries.

    Lookups wait in a queue; a few queries at a time (`max_queries`) each take
    everything waiting and fetch it at once, outside any transaction. Under
    load a lookup costs a small share of a query; alone, it costs one query
    at the loop's next turn. A query always starts after every lookup it
    answers was made, so no answer is older than its request.
    """

    MAX_BATCH = 500

    def __init__(
        self,
        rows_by_session: RowsBySession,
        max_queries: int,
        close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._rows, self._max_queries, self._close = rows_by_session, max_queries, close
        self._waiting: _Waiting = {}
        # Counted by the drainers themselves: a finished task's done-callback
        # runs a turn later, and a lookup made in between would wait forever.
        self._draining = 0
        self._drainers: set[asyncio.Task[None]] = set()  # keeps the tasks alive

    async def get_with_session(self, session_id: ID) -> _Found:
        answer: asyncio.Future[_Found] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(session_id.value, []).append(answer)
        if self._draining < self._max_queries:
            self._draining += 1
            drainer = asyncio.create_task(self._drain())
            self._drainers.add(drainer)
            drainer.add_done_callback(self._drainers.discard)
        return await answer

    async def close(self) -> None:
        if self._close is not None:
            await self._close()

    async def _drain(self) -> None:
        try:
            while self._waiting:
                ids = list(self._waiting)[: self.MAX_BATCH]
                await self._answer({key: self._waiting.pop(key) for key in ids})
        finally:
            self._draining -= 1

    async def _answer(self, waiting: _Waiting) -> None:
        try:
            rows = await self._rows(list(waiting))
        except asyncio.CancelledError:  # shutting down
            for answer in _pending(waiting):
                answer.cancel()
            raise
        except Exception as exc:  # e.g. the database is down: each request answers 503
            for answer in _pending(waiting):
                answer.set_exception(exc)
            return
        for session_id, answers in waiting.items():
            row = rows.get(session_id)
            found = (to_entity(row[0]), to_session(row[1])) if row is not None else None
            for n, answer in enumerate(answers):
                if not answer.done():  # its request may have been cancelled
                    # Entities are mutable: each caller gets its own (value
                    # objects are immutable and shared).
                    answer.set_result(_copy(found) if n else found)


async def open_user_reader(
    settings: Settings, engine: AsyncEngine, connections: int
) -> BatchedUserReader:
    """The process's UserReader: on PostgreSQL with `connections` of its own."""
    if engine.dialect.name == "postgresql":
        rows = await AsyncpgRowsBySession.open(settings, connections)
        return BatchedUserReader(rows, max_queries=connections, close=rows.close)
    path = make_url(settings.database_url).database
    if engine.dialect.name == "sqlite" and path and path != ":memory:":
        sqlite_rows = SqliteRowsBySession(path)
        return BatchedUserReader(sqlite_rows, max_queries=1, close=sqlite_rows.close)
    return BatchedUserReader(SqlRowsBySession(engine), max_queries=connections)


def _copy(found: _Found) -> _Found:
    # A Session is frozen: shared. A copy per caller of a batch cost a
    # fortieth of GET /users/me's time (py-spy, 32 callers of one session).
    return None if found is None else (dataclasses.replace(found[0]), found[1])


def _pending(waiting: _Waiting) -> list[asyncio.Future[_Found]]:
    return [answer for answers in waiting.values() for answer in answers if not answer.done()]
