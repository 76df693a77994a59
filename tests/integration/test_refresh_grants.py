"""The refresh grant's transaction against a real database: the process's own
RefreshGrants (SqlRefreshGrants on SQLite, AsyncpgRefreshGrants on
PostgreSQL), and on PostgreSQL SqlRefreshGrants beside it. Whether a grant
is usable is the core's decision (tests/unit); here, what a hold reads and
writes, and that it holds."""

import asyncio
import dataclasses
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Table, func, make_url, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.entities import RefreshToken, Session, User
from app.core.ports import HeldRefreshToken, RefreshGrant, RefreshGrants
from app.core.value_objects.opaque_token import OpaqueToken
from app.infra.db.engine import DatabaseUnavailable, read_only
from app.infra.db.models import refresh_tokens_table, sessions_table, users_table
from app.infra.db.refresh_grants import (
    AsyncpgRefreshGrants,
    SqlRefreshGrants,
    open_refresh_grants,
)
from tests.conftest import make_settings
from tests.integration.helpers import (
    a_session,
    a_token,
    a_user,
    fields,
    later,
    load_session,
    load_token,
    save,
    save_sessions,
    save_tokens,
    session_fields,
    store_session,
    token_fields,
)

CONCURRENT = 20


@pytest.fixture
async def grants(
    database_url: str, clean_engine: AsyncEngine
) -> AsyncIterator[AsyncpgRefreshGrants | SqlRefreshGrants]:
    opened = await open_refresh_grants(make_settings(database_url), clean_engine, 2)
    yield opened
    await opened.close()


@pytest.fixture
async def ann(clean_engine: AsyncEngine) -> User:
    user = a_user("ann@example.com", "Ann")
    await save(clean_engine, user)
    return user


async def signed_in(engine: AsyncEngine, user: User) -> tuple[Session, RefreshToken]:
    """A live session of `user` and its unspent refresh token, stored."""
    session = await store_session(engine, user)
    token = a_token(session)
    await save_tokens(engine, token)
    return session, token


async def stored_token(engine: AsyncEngine, token: RefreshToken) -> RefreshToken:
    stored = await load_token(engine, token)
    assert stored is not None
    return stored


async def stored_session(engine: AsyncEngine, session: Session) -> Session:
    stored = await load_session(engine, session)
    assert stored is not None
    return stored


async def every_row(engine: AsyncEngine) -> list[tuple[object, ...]]:
    """Every row of the tables a refresh reads or writes."""
    tables: list[Table] = [users_table, sessions_table, refresh_tokens_table]
    async with read_only(engine).connect() as connection:
        return [
            tuple(row)
            for table in tables
            for row in await connection.execute(select(table).order_by(*table.primary_key.columns))
        ]


async def tokens_of(engine: AsyncEngine, session: Session) -> int:
    count = select(func.count()).where(refresh_tokens_table.c.session_id == session.id.value)
    async with read_only(engine).connect() as connection:
        return int(await connection.scalar(count) or 0)


def test_the_process_grants_are_the_backends_own(
    grants: AsyncpgRefreshGrants | SqlRefreshGrants, clean_engine: AsyncEngine
) -> None:
    postgresql = clean_engine.dialect.name == "postgresql"
    assert isinstance(grants, AsyncpgRefreshGrants if postgresql else SqlRefreshGrants)


# What a hold reads.


async def test_a_hold_of_an_unknown_digest_holds_nothing_and_writes_nothing(
    grants: RefreshGrants, clean_engine: AsyncEngine, ann: User
) -> None:
    await signed_in(clean_engine, ann)
    before = await every_row(clean_engine)

    async with grants.hold(OpaqueToken.new().digest) as held:
        assert held.grant is None

    assert await every_row(clean_engine) == before


async def test_a_hold_finds_the_token_its_session_and_its_user(
    grants: RefreshGrants, clean_engine: AsyncEngine, ann: User
) -> None:
    session = a_session(ann, created_at=later(0.000001))
    session = dataclasses.replace(session, last_used_at=later(30.000002))
    token = a_token(session, issued_at=later(30.000002))
    await save_sessions(clean_engine, session)
    await save_tokens(clean_engine, token, a_token(session))

    async with grants.hold(token.digest) as held:
        grant = held.grant

    assert grant is not None
    assert token_fields(grant.token) == token_fields(token)
    assert session_fields(grant.session) == session_fields(session)
    assert fields(grant.user) == fields(ann)
    for moment in (grant.token.issued_at, grant.session.created_at, grant.user.created_at):
        assert moment.utcoffset() == timedelta(0)


async def test_a_hold_finds_spent_and_expired_tokens_ended_sessions_and_inactive_users(
    grants: RefreshGrants, clean_engine: AsyncEngine
) -> None:
    # Whether they may be refreshed is the core's decision, not the grant's.
    bob = a_user("bob@example.com", "Bob", is_active=False)
    await save(clean_engine, bob)
    session = await store_session(clean_engine, bob, ended_at=later(5.000001))
    token = dataclasses.replace(
        a_token(session, issued_at=later(-8 * 86400)), spent_at=later(1.000001), respent=True
    )
    await save_tokens(clean_engine, token)

    async with grants.hold(token.digest) as held:
        grant = held.grant

    assert grant is not None
    assert token_fields(grant.token) == token_fields(token)
    assert session_fields(grant.session) == session_fields(session)
    assert fields(grant.user) == fields(bob)


# What a hold writes.


async def test_rotating_an_unspent_token_spends_it_touches_its_session_and_stores_the_new(
    grants: RefreshGrants, clean_engine: AsyncEngine, ann: User
) -> None:
    session, token = await signed_in(clean_engine, ann)
    other, other_token = await signed_in(clean_engine, ann)
    now = later(60.000001)
    new = a_token(session, issued_at=now)

    async with grants.hold(token.digest) as held:
        await held.rotate(new, now)

    assert token_fields(await stored_token(clean_engine, token)) == token_fields(
        dataclasses.replace(token, spent_at=now)
    )
    session = dataclasses.replace(session, last_used_at=now)
    assert session_fields(await stored_session(clean_engine, session)) == session_fields(session)
    assert token_fields(await stored_token(clean_engine, new)) == token_fields(new)
    assert session_fields(await stored_session(clean_engine, other)) == session_fields(other)
    assert token_fields(await stored_token(clean_engine, other_token)) == token_fields(other_token)


async def test_rotating_a_spent_token_marks_it_spent_again_and_keeps_when_it_was_spent(
    grants: RefreshGrants, clean_engine: AsyncEngine, ann: User
) -> None:
    session = await store_session(clean_engine, ann)
    token = dataclasses.replace(a_token(session), spent_at=later(10))
    await save_tokens(clean_engine, token)
    now = later(15)
    new = a_token(session, issued_at=now)

    async with grants.hold(token.digest) as held:
        await held.rotate(new, now)

    stored = await stored_token(clean_engine, token)
    assert (stored.spent_at, stored.respent) == (later(10), True)
    assert (await stored_session(clean_engine, session)).last_used_at == now
    assert token_fields(await stored_token(clean_engine, new)) == token_fields(new)


async def test_ending_the_session_ends_the_tokens_session_only(
    grants: RefreshGrants, clean_engine: AsyncEngine, ann: User
) -> None:
    session, token = await signed_in(clean_engine, ann)
    other, _ = await signed_in(clean_engine, ann)

    async with grants.hold(token.digest) as held:
        await held.end_session(later(30.000001))

    session = dataclasses.replace(session, ended_at=later(30.000001))
    assert session_fields(await stored_session(clean_engine, session)) == session_fields(session)
    assert token_fields(await stored_token(clean_engine, token)) == token_fields(token)
    assert session_fields(await stored_session(clean_engine, other)) == session_fields(other)


async def test_ending_an_ended_session_keeps_when_it_ended(
    grants: RefreshGrants, clean_engine: AsyncEngine, ann: User
) -> None:
    session = await store_session(clean_engine, ann, ended_at=later(1))
    token = a_token(session)
    await save_tokens(clean_engine, token)

    async with grants.hold(token.digest) as held:
        await held.end_session(later(30))

    assert (await stored_session(clean_engine, session)).ended_at == later(1)


class Boom(Exception):
    pass


async def _rotate(held: HeldRefreshToken, session: Session) -> None:
    await held.rotate(a_token(session, issued_at=later(60)), later(60))


async def _end_session(held: HeldRefreshToken, session: Session) -> None:
    await held.end_session(later(60))


@pytest.mark.parametrize("write", [_rotate, _end_session], ids=["rotate", "end_session"])
async def test_a_block_that_raises_writes_nothing(
    grants: RefreshGrants,
    clean_engine: AsyncEngine,
    ann: User,
    write: Callable[[HeldRefreshToken, Session], Awaitable[None]],
) -> None:
    session, token = await signed_in(clean_engine, ann)
    before = await every_row(clean_engine)

    async def write_then_fail() -> None:
        async with grants.hold(token.digest) as held:
            await write(held, session)
            raise Boom

    with pytest.raises(Boom):
        await write_then_fail()

    assert await every_row(clean_engine) == before
    # Nor is anything left held: the next hold finds the token as it was.
    async with grants.hold(token.digest) as held:
        assert held.grant is not None
        assert held.grant.token.spent_at is None


# Holding: of concurrent holds of one token, one at a time.


async def assert_held_elsewhere(engine: AsyncEngine, token: RefreshToken) -> None:
    """Another transaction cannot take the token's row (PostgreSQL) or the
    write lock (SQLite) without waiting."""
    if engine.dialect.name == "postgresql":
        lock = text("SELECT 1 FROM refresh_tokens WHERE token_hash = :digest FOR UPDATE NOWAIT")
        with pytest.raises(DBAPIError, match="could not obtain lock"):
            async with engine.begin() as connection:
                await connection.execute(lock, {"digest": token.digest})
        return
    path = make_url(str(engine.url)).database
    assert path is not None
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            probe.execute("BEGIN IMMEDIATE")
    finally:
        probe.close()


async def waiting_or_done(engine: AsyncEngine, task: asyncio.Task[object]) -> None:
    """Returns once a transaction waits for a lock, or `task` is done.

    On SQLite there is nothing to see: assert_held_elsewhere shows that no
    writing transaction can begin before the first ends."""
    if engine.dialect.name != "postgresql":
        return
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    while not task.done():
        async with read_only(engine).connect() as connection:
            if await connection.scalar(query):
                return
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("second_by", ["same", "sql"])
async def test_a_second_hold_of_the_token_waits_for_the_first_and_finds_it_spent(
    grants: AsyncpgRefreshGrants | SqlRefreshGrants,
    clean_engine: AsyncEngine,
    ann: User,
    second_by: str,
) -> None:
    # "sql" is a second SqlRefreshGrants, as another process would have: on
    # PostgreSQL the two adapters hold the same row lock; on SQLite it does not
    # share the first one's asyncio lock and waits on SQLite's write lock.
    other: RefreshGrants = grants if second_by == "same" else SqlRefreshGrants(clean_engine)
    session, token = await signed_in(clean_engine, ann)
    events: list[str] = []
    holding, go_on, rotated, asked, release = (asyncio.Event() for _ in range(5))

    async def first() -> None:
        async with grants.hold(token.digest) as held:
            holding.set()
            await go_on.wait()
            await held.rotate(a_token(session, issued_at=later(60)), later(60))
            events.append("first rotated")
            rotated.set()
            await release.wait()
            events.append("first ends")

    async def second() -> RefreshGrant | None:
        await rotated.wait()
        events.append("second asks")
        asked.set()
        async with other.hold(token.digest) as held:
            events.append("second holds")
            return held.grant

    first_task = asyncio.create_task(first())
    second_task: asyncio.Task[object] = asyncio.create_task(second())
    try:
        await holding.wait()
        await assert_held_elsewhere(clean_engine, token)  # from the first read on
        go_on.set()
        await asked.wait()
        await waiting_or_done(clean_engine, second_task)
    finally:  # a failed check leaves no transaction open
        go_on.set()
        release.set()
        await asyncio.wait([first_task, second_task])
    first_task.result()
    grant = second_task.result()

    assert events == ["first rotated", "second asks", "first ends", "second holds"]
    assert isinstance(grant, RefreshGrant)
    assert (grant.token.spent_at, grant.token.respent) == (later(60), False)


async def test_of_concurrent_holds_of_an_unspent_token_exactly_one_finds_it_unspent(
    grants: RefreshGrants, clean_engine: AsyncEngine, ann: User
) -> None:
    session, token = await signed_in(clean_engine, ann)
    moments = [later(10 + n) for n in range(CONCURRENT)]

    async def spend(now: datetime) -> bool:
        async with grants.hold(token.digest) as held:
            assert held.grant is not None
            if held.grant.token.spent_at is not None:
                return False
            await held.rotate(a_token(session, issued_at=now), now)
            return True

    spent = await asyncio.gather(*(spend(moment) for moment in moments))

    assert spent.count(True) == 1
    stored = await stored_token(clean_engine, token)
    assert (stored.spent_at, stored.respent) == (moments[spent.index(True)], False)
    assert await tokens_of(clean_engine, session) == 2  # the spent one and one new


async def test_of_concurrent_holds_of_a_spent_token_exactly_one_finds_it_not_spent_again(
    grants: RefreshGrants, clean_engine: AsyncEngine, ann: User
) -> None:
    session = await store_session(clean_engine, ann)
    token = dataclasses.replace(a_token(session), spent_at=later(10))
    await save_tokens(clean_engine, token)

    async def spend_again(now: datetime) -> bool:
        async with grants.hold(token.digest) as held:
            assert held.grant is not None
            if held.grant.token.respent:
                return False
            await held.rotate(a_token(session, issued_at=now), now)
            return True

    spent = await asyncio.gather(*(spend_again(later(11 + n)) for n in range(CONCURRENT)))

    assert spent.count(True) == 1
    stored = await stored_token(clean_engine, token)
    assert (stored.spent_at, stored.respent) == (later(10), True)
    assert await tokens_of(clean_engine, session) == 2


# Database trouble (AsyncpgRefreshGrants: the SQLAlchemy engine has its own hooks).


async def test_a_missing_postgresql_database_is_database_unavailable(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("AsyncpgRefreshGrants is PostgreSQL's")
    missing = make_url(database_url).set(database=f"missing_{uuid.uuid4().hex[:12]}")
    grants = await AsyncpgRefreshGrants.open(
        make_settings(missing.render_as_string(hide_password=False)), 2
    )
    try:
        with pytest.raises(DatabaseUnavailable):
            async with grants.hold(OpaqueToken.new().digest):
                pass
    finally:
        await grants.close()


async def test_a_closed_pool_is_database_unavailable(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("AsyncpgRefreshGrants is PostgreSQL's")
    grants = await AsyncpgRefreshGrants.open(make_settings(database_url), 2)
    async with grants.hold(OpaqueToken.new().digest) as held:
        assert held.grant is None
    await grants.close()

    with pytest.raises(DatabaseUnavailable):
        async with grants.hold(OpaqueToken.new().digest):
            pass
