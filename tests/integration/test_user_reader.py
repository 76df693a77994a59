"""BatchedUserReader: batching rules on a fake row source, and each real row
source against the repositories on both backends."""

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.entities import Session, User
from app.core.value_objects import ID, Name
from app.infra.db.engine import DatabaseUnavailable
from app.infra.db.mapping import SessionRecord, UserRecord, to_row
from app.infra.db.models import SessionRow
from app.infra.db.rows_by_session import (
    AsyncpgRowsBySession,
    SqliteRowsBySession,
    SqlRowsBySession,
)
from app.infra.db.user_reader import BatchedUserReader, open_user_reader
from tests.conftest import make_settings
from tests.integration.helpers import (
    a_session,
    a_user,
    fields,
    later,
    load,
    load_session,
    save,
    save_sessions,
    session_fields,
    uow_for,
)

# A hang is the failure these tests look for: fail it instead of waiting forever.
DEADLINE = 5

Found = tuple[User, Session] | None
Rows = Mapping[uuid.UUID, tuple[UserRecord, SessionRecord]]


def signed_in(email: str = "ann@example.com") -> tuple[User, Session]:
    """A user and a session of theirs."""
    user = a_user(email)
    return user, a_session(user)


def session_row(session: Session) -> SessionRow:
    return SessionRow(
        id=session.id.value,
        user_id=session.user_id.value,
        created_at=session.created_at,
        last_used_at=session.last_used_at,
        expires_at=session.expires_at,
        ended_at=session.ended_at,
        user_agent=session.user_agent,
    )


class FakeRows:
    """Rows of a dict, answered after one loop turn; counts queries and overlap."""

    def __init__(self, *logins: tuple[User, Session]) -> None:
        self.rows: dict[uuid.UUID, tuple[UserRecord, SessionRecord]] = {
            session.id.value: (to_row(user), session_row(session)) for user, session in logins
        }
        self.queries: list[list[uuid.UUID]] = []
        self.in_flight = self.most_in_flight = 0
        self.fail_with: Exception | None = None

    async def __call__(self, ids: list[uuid.UUID]) -> Rows:
        self.queries.append(ids)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)
            if self.fail_with is not None:
                raise self.fail_with
            return {i: self.rows[i] for i in ids if i in self.rows}
        finally:
            self.in_flight -= 1


async def lookup(reader: BatchedUserReader, session: Session | uuid.UUID) -> Found:
    session_id = session.id if isinstance(session, Session) else ID(session)
    return await asyncio.wait_for(reader.get_with_session(session_id), DEADLINE)


def assert_found(found: Found, user: User, session: Session) -> None:
    assert found is not None
    assert fields(found[0]) == fields(user)
    assert session_fields(found[1]) == session_fields(session)


async def test_a_lone_lookup_is_one_query() -> None:
    ann, session = signed_in()
    rows = FakeRows((ann, session))
    found = await lookup(BatchedUserReader(rows, max_queries=2), session)
    assert_found(found, ann, session)
    assert rows.queries == [[session.id.value]]


async def test_an_unknown_session_id_is_none() -> None:
    reader = BatchedUserReader(FakeRows(signed_in()), max_queries=1)
    assert await lookup(reader, uuid.uuid4()) is None


async def test_concurrent_lookups_share_few_queries() -> None:
    logins = [signed_in(f"u{i}@example.com") for i in range(50)]
    rows = FakeRows(*logins)
    reader = BatchedUserReader(rows, max_queries=2)
    sessions = [session for _, session in logins]

    found = await asyncio.gather(*(lookup(reader, s) for s in sessions * 2))

    assert [(f[0].id, f[1].id) if f else None for f in found] == [
        (u.id, s.id) for u, s in logins * 2
    ]
    assert len(rows.queries) <= 2
    assert rows.most_in_flight <= 2
    assert sorted(i for q in rows.queries for i in q) == sorted(s.id.value for s in sessions)


async def test_no_query_holds_more_than_the_batch_limit() -> None:
    logins = [signed_in(f"u{i}@example.com") for i in range(BatchedUserReader.MAX_BATCH + 7)]
    rows = FakeRows(*logins)
    reader = BatchedUserReader(rows, max_queries=1)
    await asyncio.gather(*(lookup(reader, session) for _, session in logins))
    assert [len(q) for q in rows.queries] == [BatchedUserReader.MAX_BATCH, 7]


async def test_a_lookup_right_after_the_queue_empties_is_answered() -> None:
    # A lookup made just as the last query finished once waited forever.
    ann, session = signed_in()
    reader = BatchedUserReader(FakeRows((ann, session)), max_queries=1)
    for _ in range(20):
        first = asyncio.create_task(lookup(reader, session))
        await asyncio.sleep(0)
        await first
        assert await lookup(reader, session) is not None


async def test_each_caller_gets_its_own_entities() -> None:
    ann, session = signed_in()
    reader = BatchedUserReader(FakeRows((ann, session)), max_queries=1)
    one, two = await asyncio.gather(lookup(reader, session), lookup(reader, session))
    assert one is not None
    assert two is not None
    one[0].rename(Name("Changed"), later(1))
    assert two[0].name == Name("Ann")
    # The session is shared, and no caller can change it for the others.
    with pytest.raises(dataclasses.FrozenInstanceError):
        one[1].ended_at = later(1)  # type: ignore[misc]
    assert two[1].ended_at is None


async def test_a_failed_query_fails_its_lookups_and_the_next_ones_recover() -> None:
    ann, session = signed_in()
    rows = FakeRows((ann, session))
    reader = BatchedUserReader(rows, max_queries=1)
    rows.fail_with = DatabaseUnavailable("down")

    results = await asyncio.gather(
        lookup(reader, session), lookup(reader, session), return_exceptions=True
    )

    assert all(isinstance(r, DatabaseUnavailable) for r in results)
    rows.fail_with = None
    assert await lookup(reader, session) is not None


async def test_a_cancelled_lookup_does_not_disturb_the_others() -> None:
    ann, session = signed_in()
    reader = BatchedUserReader(FakeRows((ann, session)), max_queries=1)
    cancelled = asyncio.create_task(lookup(reader, session))
    kept = asyncio.create_task(lookup(reader, session))
    await asyncio.sleep(0)
    cancelled.cancel()
    assert await kept is not None
    assert cancelled.cancelled()


# The real row sources, against what the repositories store.


@pytest.fixture
async def reader(database_url: str, clean_engine: AsyncEngine) -> AsyncIterator[BatchedUserReader]:
    opened = await open_user_reader(make_settings(database_url), clean_engine, connections=2)
    yield opened
    await opened.close()


async def test_the_process_reader_reads_what_the_repositories_wrote(
    reader: BatchedUserReader, clean_engine: AsyncEngine
) -> None:
    ann = a_user(updated_at=later(3), token_version=4, email_verified=True)
    bob = a_user("bob@example.com", "Bob", is_active=False)
    ann_phone, ann_laptop = a_session(ann, created_at=later(1)), a_session(ann, user_agent=None)
    bob_session = a_session(bob, created_at=later(2))
    await save(clean_engine, ann, bob)
    await save_sessions(clean_engine, ann_phone, ann_laptop, bob_session)

    found = await asyncio.gather(
        lookup(reader, ann_phone),
        lookup(reader, bob_session),
        lookup(reader, ann_laptop),
        lookup(reader, ann_phone),
    )

    for got, (user, session) in zip(
        found,
        [(ann, ann_phone), (bob, bob_session), (ann, ann_laptop), (ann, ann_phone)],
        strict=True,
    ):
        assert_found(got, user, session)
    assert await lookup(reader, uuid.uuid4()) is None


async def test_a_lookup_sees_every_change_committed_before_it(
    reader: BatchedUserReader, clean_engine: AsyncEngine
) -> None:
    ann, session = signed_in()
    await save(clean_engine, ann)
    await save_sessions(clean_engine, session)
    found = await lookup(reader, session)
    assert found is not None
    assert found[1].ended_at is None
    assert found[0].email_verified is False

    async with uow_for(clean_engine) as uow:
        verified = await uow.users.get_by_id(ann.id)
        assert verified is not None
        verified.verify_email(later(4))
        await uow.users.update(verified)
        await uow.sessions.end(session.id, later(5))
        await uow.commit()

    found = await lookup(reader, session)
    assert found is not None
    assert found[1].ended_at == later(5)
    assert found[0].email_verified is True

    async with uow_for(clean_engine) as uow:
        await uow.users.delete(ann.id)
        await uow.commit()

    assert await lookup(reader, session) is None


async def test_the_fast_and_the_generic_row_sources_agree(
    database_url: str, clean_engine: AsyncEngine
) -> None:
    # Microseconds apart, so any decoding slip of the timestamps shows.
    users = [
        a_user(f"u{i}@example.com", created_at=later(i / 1e6), email_verified=i == 1)
        for i in range(3)
    ]
    sessions = [a_session(u, created_at=later(10 + i / 1e6)) for i, u in enumerate(users)]
    await save(clean_engine, *users)
    await save_sessions(clean_engine, *sessions)
    async with uow_for(clean_engine) as uow:
        await uow.sessions.end(sessions[0].id, later(20.000001))
        await uow.commit()
    fast = await open_user_reader(make_settings(database_url), clean_engine, connections=1)
    generic = BatchedUserReader(SqlRowsBySession(clean_engine), max_queries=1)
    try:
        for user, session in zip(users, sessions, strict=True):
            stored_user = await load(clean_engine, user)
            stored_session = await load_session(clean_engine, session)
            assert stored_user is not None
            assert stored_session is not None
            for reader in (fast, generic):
                assert_found(await lookup(reader, session), stored_user, stored_session)
        stored = await load_session(clean_engine, sessions[0])
        assert stored is not None
        assert stored.ended_at == later(20.000001)
    finally:
        await fast.close()


async def test_the_fast_row_source_is_the_backends_own(
    database_url: str, clean_engine: AsyncEngine
) -> None:
    opened = await open_user_reader(make_settings(database_url), clean_engine, connections=1)
    try:
        source = opened._rows
        expected = (
            AsyncpgRowsBySession if database_url.startswith("postgresql") else SqliteRowsBySession
        )
        assert isinstance(source, expected)
    finally:
        await opened.close()


async def test_an_unreachable_postgresql_is_database_unavailable() -> None:
    settings = make_settings(
        "postgresql+asyncpg://postgres@127.0.0.1:9/nowhere", DB_CONNECT_TIMEOUT_SECONDS=2
    )
    rows = await AsyncpgRowsBySession.open(settings, connections=1)
    try:
        with pytest.raises(DatabaseUnavailable):
            await rows([uuid.uuid4()])
    finally:
        await rows.close()


async def test_a_missing_sqlite_file_is_database_unavailable(tmp_path: Path) -> None:
    rows = SqliteRowsBySession(str(tmp_path / "missing.db"))
    with pytest.raises(DatabaseUnavailable):
        await rows([uuid.uuid4()])
    await rows.close()
