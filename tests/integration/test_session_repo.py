"""SqlSessionRepo and SqlRefreshTokenRepo against a real database, through the
unit of work the app uses; and every row source of the reader against them.
What a refresh writes (a token spent, the session's last use) is the refresh
grant's: tests/integration/test_refresh_grants.py."""

import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.entities import Session, User
from app.core.value_objects import ID
from app.core.value_objects.opaque_token import OpaqueToken
from app.infra.db.rows_by_session import (
    AsyncpgRowsBySession,
    SqliteRowsBySession,
    SqlRowsBySession,
)
from app.infra.db.user_reader import BatchedUserReader
from tests.conftest import make_settings
from tests.integration.helpers import (
    T0,
    a_session,
    a_token,
    a_user,
    fields,
    later,
    load,
    load_session,
    load_token,
    save,
    save_sessions,
    save_tokens,
    session_fields,
    store_session,
    token_fields,
    uow_for,
)

# Sessions built by the helpers live 30 days from T0: at NOW they are live.
NOW = later(3600)


async def live(engine: AsyncEngine, user: User, now: datetime = NOW) -> list[ID]:
    async with uow_for(engine) as uow:
        return [s.id for s in await uow.sessions.list_live(user.id, now)]


async def ended_at(engine: AsyncEngine, session: Session) -> datetime | None:
    stored = await load_session(engine, session)
    assert stored is not None
    return stored.ended_at


@pytest.fixture
async def ann(clean_engine: AsyncEngine) -> User:
    user = a_user("ann@example.com", "Ann")
    await save(clean_engine, user)
    return user


@pytest.fixture
async def bob(clean_engine: AsyncEngine) -> User:
    user = a_user("bob@example.com", "Bob")
    await save(clean_engine, user)
    return user


# Sessions.


@pytest.mark.parametrize("user_agent", ["Mozilla/5.0 (Ünïcode; 🚀)", None])
async def test_add_then_get_round_trips_every_field(
    clean_engine: AsyncEngine, ann: User, user_agent: str | None
) -> None:
    session = a_session(ann, created_at=T0, user_agent=user_agent)
    session = dataclasses.replace(session, last_used_at=later(61.000001))
    await save_sessions(clean_engine, session)

    stored = await load_session(clean_engine, session)

    assert stored is not None
    assert session_fields(stored) == session_fields(session)
    for moment in (stored.created_at, stored.last_used_at, stored.expires_at):
        assert moment.utcoffset() == timedelta(0)
    assert stored.created_at.microsecond == T0.microsecond
    assert stored.user_agent == user_agent


async def test_times_with_another_utc_offset_keep_their_instant(
    clean_engine: AsyncEngine, ann: User
) -> None:
    plus_two = timezone(timedelta(hours=2))
    session = a_session(ann, created_at=T0.astimezone(plus_two))
    await save_sessions(clean_engine, session)

    stored = await load_session(clean_engine, session)

    assert stored is not None
    assert stored.created_at.utcoffset() == timedelta(0)
    assert (stored.created_at, stored.expires_at) == (T0, T0 + timedelta(days=30))


async def test_get_returns_none_for_an_unknown_id(clean_engine: AsyncEngine, ann: User) -> None:
    await store_session(clean_engine, ann)
    async with uow_for(clean_engine) as uow:
        assert await uow.sessions.get(ID.new()) is None


async def test_list_live_lists_the_users_live_sessions_newest_first(
    clean_engine: AsyncEngine, ann: User, bob: User
) -> None:
    oldest = await store_session(clean_engine, ann, created_at=later(1))
    newest = await store_session(clean_engine, ann, created_at=later(3))
    middle = await store_session(clean_engine, ann, created_at=later(2))
    await store_session(clean_engine, ann, created_at=later(4), ended_at=later(5))
    # Its absolute limit is NOW itself: no longer live.
    await store_session(
        clean_engine, ann, created_at=NOW - timedelta(days=1), lifetime=timedelta(days=1)
    )
    await store_session(clean_engine, bob, created_at=later(6))

    async with uow_for(clean_engine) as uow:
        listed = await uow.sessions.list_live(ann.id, NOW)

    assert [session_fields(s) for s in listed] == [
        session_fields(s) for s in (newest, middle, oldest)
    ]


async def test_list_live_of_a_user_without_sessions_is_empty(
    clean_engine: AsyncEngine, ann: User, bob: User
) -> None:
    await store_session(clean_engine, bob)
    assert await live(clean_engine, ann) == []


async def test_end_sets_ended_at_once(clean_engine: AsyncEngine, ann: User) -> None:
    session, other = await store_session(clean_engine, ann), await store_session(clean_engine, ann)

    for moment in (later(10), later(20)):
        async with uow_for(clean_engine) as uow:
            await uow.sessions.end(session.id, moment)
            await uow.commit()

    assert await ended_at(clean_engine, session) == later(10)
    assert await ended_at(clean_engine, other) is None
    assert await live(clean_engine, ann) == [other.id]


async def test_end_all_ends_only_that_users_sessions(
    clean_engine: AsyncEngine, ann: User, bob: User
) -> None:
    first, second = await store_session(clean_engine, ann), await store_session(clean_engine, ann)
    already = await store_session(clean_engine, ann, ended_at=later(1))
    bobs = await store_session(clean_engine, bob)

    async with uow_for(clean_engine) as uow:
        await uow.sessions.end_all(ann.id, later(5))
        await uow.commit()

    assert await ended_at(clean_engine, first) == later(5)
    assert await ended_at(clean_engine, second) == later(5)
    assert await ended_at(clean_engine, already) == later(1)
    assert await ended_at(clean_engine, bobs) is None
    assert await live(clean_engine, bob) == [bobs.id]


@pytest.mark.parametrize("keep", [0, 1, 3, 5, 9])
async def test_end_beyond_ends_exactly_the_oldest_live_sessions(
    clean_engine: AsyncEngine, ann: User, bob: User, keep: int
) -> None:
    newest_first = [
        await store_session(clean_engine, ann, created_at=later(seconds))
        for seconds in (5, 4, 3, 2, 1)
    ]
    # Newer than all of them but ended, and older than all of them but expired: neither counts.
    ended = await store_session(clean_engine, ann, created_at=later(6), ended_at=later(7))
    expired = await store_session(
        clean_engine, ann, created_at=T0 - timedelta(days=1), lifetime=timedelta(days=1)
    )
    bobs = await store_session(clean_engine, bob, created_at=T0)

    async with uow_for(clean_engine) as uow:
        await uow.sessions.end_beyond(ann.id, keep, NOW)
        await uow.commit()

    kept, beyond = newest_first[:keep], newest_first[keep:]
    assert await live(clean_engine, ann) == [s.id for s in kept]
    assert [await ended_at(clean_engine, s) for s in beyond] == [NOW] * len(beyond)
    assert await ended_at(clean_engine, ended) == later(7)
    assert await ended_at(clean_engine, expired) is None
    assert await live(clean_engine, bob) == [bobs.id]


async def test_deleting_a_user_deletes_its_sessions_and_their_refresh_tokens(
    clean_engine: AsyncEngine, ann: User, bob: User
) -> None:
    anns = [await store_session(clean_engine, ann), await store_session(clean_engine, ann)]
    bobs = await store_session(clean_engine, bob)
    ann_tokens = [a_token(anns[0]), a_token(anns[0]), a_token(anns[1])]
    bob_token = a_token(bobs)
    await save_tokens(clean_engine, *ann_tokens, bob_token)

    async with uow_for(clean_engine) as uow:
        await uow.users.delete(ann.id)
        await uow.commit()

    assert [await load_session(clean_engine, s) for s in anns] == [None, None]
    assert [await load_token(clean_engine, t) for t in ann_tokens] == [None, None, None]
    assert await load_session(clean_engine, bobs) is not None
    assert await load_token(clean_engine, bob_token) is not None


async def test_leaving_the_unit_of_work_without_commit_keeps_nothing(
    clean_engine: AsyncEngine, ann: User
) -> None:
    existing = await store_session(clean_engine, ann)
    existing_token = a_token(existing)
    await save_tokens(clean_engine, existing_token)
    new = a_session(ann)
    new_token = a_token(new)

    async with uow_for(clean_engine) as uow:
        await uow.sessions.add(new)
        await uow.refresh_tokens.add(new_token)
        await uow.sessions.end(existing.id, later(60))
        # Visible inside its own transaction...
        assert await uow.sessions.get(new.id) is not None
        assert await uow.refresh_tokens.get(new_token.digest) is not None

    # ...and gone for everyone else.
    assert await load_session(clean_engine, new) is None
    assert await load_token(clean_engine, new_token) is None
    stored = await load_session(clean_engine, existing)
    stored_token = await load_token(clean_engine, existing_token)
    assert stored is not None
    assert stored_token is not None
    assert session_fields(stored) == session_fields(existing)
    assert token_fields(stored_token) == token_fields(existing_token)


# Refresh tokens.


async def test_a_token_round_trips_by_its_digest(clean_engine: AsyncEngine, ann: User) -> None:
    token = a_token(await store_session(clean_engine, ann), issued_at=later(0.000001))
    await save_tokens(clean_engine, token)

    stored = await load_token(clean_engine, token)

    assert stored is not None
    assert token_fields(stored) == token_fields(token)
    assert (stored.spent_at, stored.respent) == (None, False)
    assert stored.issued_at.utcoffset() == timedelta(0)
    async with uow_for(clean_engine) as uow:
        assert await uow.refresh_tokens.get(OpaqueToken.new().digest) is None


# The reader's row sources: the generic one, and the backend's own.


@pytest.fixture(params=["generic", "native"])
async def reader(
    request: pytest.FixtureRequest, database_url: str, clean_engine: AsyncEngine
) -> AsyncIterator[BatchedUserReader]:
    if request.param == "generic":
        opened = BatchedUserReader(SqlRowsBySession(clean_engine), max_queries=1)
    elif clean_engine.dialect.name == "postgresql":
        asyncpg_rows = await AsyncpgRowsBySession.open(make_settings(database_url), connections=1)
        opened = BatchedUserReader(asyncpg_rows, max_queries=1, close=asyncpg_rows.close)
    else:
        path = make_url(database_url).database
        assert path is not None
        sqlite_rows = SqliteRowsBySession(path)
        opened = BatchedUserReader(sqlite_rows, max_queries=1, close=sqlite_rows.close)
    yield opened
    await opened.close()


async def assert_reads_as_the_repositories(
    reader: BatchedUserReader, engine: AsyncEngine, session: Session
) -> None:
    async with uow_for(engine) as uow:
        stored_session = await uow.sessions.get(session.id)
        assert stored_session is not None
        stored_user = await uow.users.get_by_id(stored_session.user_id)
        assert stored_user is not None

    found = await reader.get_with_session(session.id)

    assert found is not None
    user, read_session = found
    assert fields(user) == fields(stored_user)
    assert session_fields(read_session) == session_fields(stored_session)


async def test_the_reader_answers_what_the_repositories_read(
    reader: BatchedUserReader, clean_engine: AsyncEngine, ann: User, bob: User
) -> None:
    with_agent = a_session(ann, created_at=later(0.000001))
    with_agent = dataclasses.replace(with_agent, last_used_at=later(30.000002))  # refreshed since
    without_agent = a_session(bob, created_at=later(1.5), user_agent=None)
    await save_sessions(clean_engine, with_agent, without_agent)

    for session in (with_agent, without_agent):
        await assert_reads_as_the_repositories(reader, clean_engine, session)
    found = await reader.get_with_session(with_agent.id)
    assert found is not None
    assert fields(found[0]) == fields(ann)
    assert found[1].last_used_at == later(30.000002)


async def test_the_reader_returns_ended_and_expired_sessions(
    reader: BatchedUserReader, clean_engine: AsyncEngine, ann: User
) -> None:
    # Whether a session is live is the core's decision, not the reader's.
    ended = await store_session(clean_engine, ann, ended_at=later(7.000001))
    expired = await store_session(
        clean_engine, ann, created_at=T0 - timedelta(days=1), lifetime=timedelta(days=1)
    )

    for session in (ended, expired):
        await assert_reads_as_the_repositories(reader, clean_engine, session)
    found = await reader.get_with_session(ended.id)
    assert found is not None
    assert found[1].ended_at == later(7.000001)


async def test_the_reader_answers_none_for_an_unknown_session(
    reader: BatchedUserReader, clean_engine: AsyncEngine, ann: User
) -> None:
    await store_session(clean_engine, ann)
    assert await reader.get_with_session(ID(uuid.uuid4())) is None


async def test_the_reader_answers_none_for_a_deleted_users_session(
    reader: BatchedUserReader, clean_engine: AsyncEngine, ann: User, bob: User
) -> None:
    anns, bobs = await store_session(clean_engine, ann), await store_session(clean_engine, bob)

    async with uow_for(clean_engine) as uow:
        await uow.users.delete(ann.id)
        await uow.commit()

    assert await load(clean_engine, ann) is None
    assert await reader.get_with_session(anns.id) is None
    assert await reader.get_with_session(bobs.id) is not None
