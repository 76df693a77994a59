"""SqlSessionRepo and SqlRefreshTokenRepo against a real database, through the
unit of work the app uses; and every row source of the reader against them."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.entities import RefreshToken, Session, User
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
    a_user,
    fields,
    later,
    load,
    load_session,
    save,
    save_sessions,
    session_fields,
    store_session,
    uow_for,
)

# Sessions built by the helpers live 30 days from T0: at NOW they are live.
NOW = later(3600)
CONCURRENT = 20


def a_token(session: Session, issued_at: datetime = T0) -> RefreshToken:
    return RefreshToken(
        digest=OpaqueToken.new().digest,
        session_id=session.id,
        issued_at=issued_at,
        expires_at=issued_at + timedelta(days=7),
    )


def token_fields(token: RefreshToken) -> tuple[object, ...]:
    return (
        token.digest,
        token.session_id,
        token.issued_at,
        token.expires_at,
        token.spent_at,
        token.respent,
    )


async def save_tokens(engine: AsyncEngine, *tokens: RefreshToken) -> None:
    async with uow_for(engine) as uow:
        for token in tokens:
            await uow.refresh_tokens.add(token)
        await uow.commit()


async def load_token(engine: AsyncEngine, token: RefreshToken) -> RefreshToken | None:
    async with uow_for(engine) as uow:
        return await uow.refresh_tokens.get(token.digest)


async def live(engine: AsyncEngine, user: User, now: datetime = NOW) -> list[ID]:
    async with uow_for(engine) as uow:
        return [s.id for s in await uow.sessions.list_live(user.id, now)]


async def ended_at(engine: AsyncEngine, session: Session) -> datetime | None:
    stored = await load_session(engine, session)
    assert stored is not None
    return stored.ended_at


async def spend(engine: AsyncEngine, token: RefreshToken, now: datetime) -> bool:
    """One refresh's spend, in a transaction of its own."""
    async with uow_for(engine) as uow:
        spent = await uow.refresh_tokens.spend(token.digest, now)
        await uow.commit()
        return spent


async def spend_again(engine: AsyncEngine, token: RefreshToken, spent_since: datetime) -> bool:
    async with uow_for(engine) as uow:
        spent = await uow.refresh_tokens.spend_again(token.digest, spent_since)
        await uow.commit()
        return spent


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
    session.last_used_at = later(61.000001)
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


async def test_touch_records_the_last_use(clean_engine: AsyncEngine, ann: User) -> None:
    touched, other = await store_session(clean_engine, ann), await store_session(clean_engine, ann)

    async with uow_for(clean_engine) as uow:
        await uow.sessions.touch(touched.id, later(60.000001))
        await uow.commit()

    stored, stored_other = (
        await load_session(clean_engine, touched),
        await load_session(clean_engine, other),
    )
    assert stored is not None
    assert stored_other is not None
    touched.last_used_at = later(60.000001)
    assert session_fields(stored) == session_fields(touched)
    assert session_fields(stored_other) == session_fields(other)


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
        await uow.sessions.touch(existing.id, later(60))
        await uow.sessions.end(existing.id, later(60))
        assert await uow.refresh_tokens.spend(existing_token.digest, later(60))
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


async def test_spend_succeeds_once(clean_engine: AsyncEngine, ann: User) -> None:
    token = a_token(await store_session(clean_engine, ann))
    await save_tokens(clean_engine, token)

    assert await spend(clean_engine, token, later(10.000001))
    assert not await spend(clean_engine, token, later(20))

    stored = await load_token(clean_engine, token)
    assert stored is not None
    assert stored.spent_at == later(10.000001)
    assert stored.respent is False


async def test_spend_of_an_unknown_token_fails(clean_engine: AsyncEngine, ann: User) -> None:
    unknown = a_token(await store_session(clean_engine, ann))
    assert not await spend(clean_engine, unknown, later(10))


async def test_spend_again_refuses_an_unspent_token(clean_engine: AsyncEngine, ann: User) -> None:
    token = a_token(await store_session(clean_engine, ann))
    await save_tokens(clean_engine, token)

    assert not await spend_again(clean_engine, token, T0 - timedelta(days=1))

    stored = await load_token(clean_engine, token)
    assert stored is not None
    assert (stored.spent_at, stored.respent) == (None, False)


@pytest.mark.parametrize(
    "since", [later(10), later(9.999999)], ids=["spent-at-since", "spent-after-since"]
)
async def test_spend_again_succeeds_once_for_a_token_spent_since(
    clean_engine: AsyncEngine, ann: User, since: datetime
) -> None:
    token = a_token(await store_session(clean_engine, ann))
    await save_tokens(clean_engine, token)
    assert await spend(clean_engine, token, later(10))

    assert await spend_again(clean_engine, token, since)
    assert not await spend_again(clean_engine, token, since)

    stored = await load_token(clean_engine, token)
    assert stored is not None
    assert (stored.spent_at, stored.respent) == (later(10), True)


async def test_spend_again_refuses_a_token_spent_before_since(
    clean_engine: AsyncEngine, ann: User
) -> None:
    token = a_token(await store_session(clean_engine, ann))
    await save_tokens(clean_engine, token)
    assert await spend(clean_engine, token, later(10))

    assert not await spend_again(clean_engine, token, later(10.000001))

    stored = await load_token(clean_engine, token)
    assert stored is not None
    assert stored.respent is False


async def test_of_concurrent_spends_of_a_token_exactly_one_succeeds(
    clean_engine: AsyncEngine, ann: User
) -> None:
    token = a_token(await store_session(clean_engine, ann))
    await save_tokens(clean_engine, token)
    moments = [later(10 + n) for n in range(CONCURRENT)]

    spent = await asyncio.gather(*(spend(clean_engine, token, moment) for moment in moments))

    assert spent.count(True) == 1
    stored = await load_token(clean_engine, token)
    assert stored is not None
    assert stored.spent_at == moments[spent.index(True)]


async def test_of_concurrent_spends_again_exactly_one_succeeds(
    clean_engine: AsyncEngine, ann: User
) -> None:
    token = a_token(await store_session(clean_engine, ann))
    await save_tokens(clean_engine, token)
    assert await spend(clean_engine, token, later(10))

    spent = await asyncio.gather(
        *(spend_again(clean_engine, token, later(5)) for _ in range(CONCURRENT))
    )

    assert spent.count(True) == 1
    stored = await load_token(clean_engine, token)
    assert stored is not None
    assert stored.respent is True


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
    with_agent = await store_session(clean_engine, ann, created_at=later(0.000001))
    without_agent = a_session(bob, created_at=later(1.5), user_agent=None)
    await save_sessions(clean_engine, without_agent)
    async with uow_for(clean_engine) as uow:
        await uow.sessions.touch(with_agent.id, later(30.000002))
        await uow.commit()

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
