"""BatchedUserReader: batching rules on a fake row source, and each real row
source against the repository on both backends."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.entities import User
from app.core.value_objects import ID, Name
from app.infra.db.engine import DatabaseUnavailable
from app.infra.db.mapping import UserRecord, to_row
from app.infra.db.rows_by_id import AsyncpgRowsById, SqliteRowsById, SqlRowsById
from app.infra.db.user_reader import BatchedUserReader, open_user_reader
from tests.conftest import make_settings
from tests.integration.helpers import a_user, fields, later, load, save, uow_for

# A hang is the failure these tests look for: fail it instead of waiting forever.
DEADLINE = 5


class FakeRows:
    """Rows of a dict, answered after one loop turn; counts queries and overlap."""

    def __init__(self, *users: User) -> None:
        self.rows: dict[uuid.UUID, UserRecord] = {u.id.value: to_row(u) for u in users}
        self.queries: list[list[uuid.UUID]] = []
        self.in_flight = self.most_in_flight = 0
        self.fail_with: Exception | None = None

    async def __call__(self, ids: list[uuid.UUID]) -> Mapping[uuid.UUID, UserRecord]:
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


async def lookup(reader: BatchedUserReader, user: User | uuid.UUID) -> User | None:
    user_id = user.id if isinstance(user, User) else ID(user)
    return await asyncio.wait_for(reader.get_by_id(user_id), DEADLINE)


async def test_a_lone_lookup_is_one_query() -> None:
    ann = a_user()
    rows = FakeRows(ann)
    found = await lookup(BatchedUserReader(rows, max_queries=2), ann)
    assert found is not None
    assert fields(found) == fields(ann)
    assert rows.queries == [[ann.id.value]]


async def test_an_unknown_id_is_none() -> None:
    assert await lookup(BatchedUserReader(FakeRows(), max_queries=1), uuid.uuid4()) is None


async def test_concurrent_lookups_share_few_queries() -> None:
    users = [a_user(f"u{i}@example.com") for i in range(50)]
    rows = FakeRows(*users)
    reader = BatchedUserReader(rows, max_queries=2)

    found = await asyncio.gather(*(lookup(reader, u) for u in users * 2))

    assert [f.id if f else None for f in found] == [u.id for u in users * 2]
    assert len(rows.queries) <= 2
    assert rows.most_in_flight <= 2
    assert sorted(i for q in rows.queries for i in q) == sorted(u.id.value for u in users)


async def test_no_query_holds_more_than_the_batch_limit() -> None:
    users = [a_user(f"u{i}@example.com") for i in range(BatchedUserReader.MAX_BATCH + 7)]
    rows = FakeRows(*users)
    reader = BatchedUserReader(rows, max_queries=1)
    await asyncio.gather(*(lookup(reader, u) for u in users))
    assert [len(q) for q in rows.queries] == [BatchedUserReader.MAX_BATCH, 7]


async def test_a_lookup_right_after_the_queue_empties_is_answered() -> None:
    # A lookup made just as the last query finished once waited forever.
    ann = a_user()
    reader = BatchedUserReader(FakeRows(ann), max_queries=1)
    for _ in range(20):
        first = asyncio.create_task(lookup(reader, ann))
        await asyncio.sleep(0)
        await first
        assert await lookup(reader, ann) is not None


async def test_each_caller_gets_its_own_entity() -> None:
    ann = a_user()
    reader = BatchedUserReader(FakeRows(ann), max_queries=1)
    one, two = await asyncio.gather(lookup(reader, ann), lookup(reader, ann))
    assert one is not None
    assert two is not None
    one.rename(Name("Changed"), later(1))
    assert two.name == Name("Ann")


async def test_a_failed_query_fails_its_lookups_and_the_next_ones_recover() -> None:
    ann = a_user()
    rows = FakeRows(ann)
    reader = BatchedUserReader(rows, max_queries=1)
    rows.fail_with = DatabaseUnavailable("down")

    results = await asyncio.gather(lookup(reader, ann), lookup(reader, ann), return_exceptions=True)

    assert all(isinstance(r, DatabaseUnavailable) for r in results)
    rows.fail_with = None
    assert await lookup(reader, ann) is not None


async def test_a_cancelled_lookup_does_not_disturb_the_others() -> None:
    ann = a_user()
    reader = BatchedUserReader(FakeRows(ann), max_queries=1)
    cancelled = asyncio.create_task(lookup(reader, ann))
    kept = asyncio.create_task(lookup(reader, ann))
    await asyncio.sleep(0)
    cancelled.cancel()
    assert await kept is not None
    assert cancelled.cancelled()


# The real row sources, against what the repository stores.


@pytest.fixture
async def reader(database_url: str, clean_engine: AsyncEngine) -> AsyncIterator[BatchedUserReader]:
    opened = await open_user_reader(make_settings(database_url), clean_engine, connections=2)
    yield opened
    await opened.close()


async def test_the_process_reader_reads_what_the_repository_wrote(
    reader: BatchedUserReader, clean_engine: AsyncEngine
) -> None:
    ann = a_user(updated_at=later(3), token_version=4)
    bob = a_user("bob@example.com", "Bob", is_active=False)
    await save(clean_engine, ann, bob)

    found = await asyncio.gather(lookup(reader, ann), lookup(reader, bob), lookup(reader, ann))

    for got, want in zip(found, (ann, bob, ann), strict=True):
        assert got is not None
        assert fields(got) == fields(want)
    assert await lookup(reader, uuid.uuid4()) is None


async def test_a_lookup_sees_every_change_committed_before_it(
    reader: BatchedUserReader, clean_engine: AsyncEngine
) -> None:
    ann = a_user()
    await save(clean_engine, ann)
    assert await lookup(reader, ann) is not None

    async with uow_for(clean_engine) as uow:
        await uow.users.delete(ann.id)
        await uow.commit()

    assert await lookup(reader, ann) is None


async def test_the_fast_and_the_generic_row_sources_agree(
    database_url: str, clean_engine: AsyncEngine
) -> None:
    # Microseconds apart, so any decoding slip of the timestamps shows.
    users = [a_user(f"u{i}@example.com", created_at=later(i / 1e6)) for i in range(3)]
    await save(clean_engine, *users)
    fast = await open_user_reader(make_settings(database_url), clean_engine, connections=1)
    generic = BatchedUserReader(SqlRowsById(clean_engine), max_queries=1)
    try:
        for user in users:
            stored = await load(clean_engine, user)
            assert stored is not None
            for reader in (fast, generic):
                got = await lookup(reader, user)
                assert got is not None
                assert fields(got) == fields(stored) == fields(user)
    finally:
        await fast.close()


async def test_the_fast_row_source_is_the_backends_own(
    database_url: str, clean_engine: AsyncEngine
) -> None:
    opened = await open_user_reader(make_settings(database_url), clean_engine, connections=1)
    try:
        source = opened._rows_by_id
        expected = AsyncpgRowsById if database_url.startswith("postgresql") else SqliteRowsById
        assert isinstance(source, expected)
    finally:
        await opened.close()


async def test_an_unreachable_postgresql_is_database_unavailable() -> None:
    settings = make_settings(
        "postgresql+asyncpg://postgres@127.0.0.1:9/nowhere", DB_CONNECT_TIMEOUT_SECONDS=2
    )
    rows = await AsyncpgRowsById.open(settings, connections=1)
    try:
        with pytest.raises(DatabaseUnavailable):
            await rows([uuid.uuid4()])
    finally:
        await rows.close()


async def test_a_missing_sqlite_file_is_database_unavailable(tmp_path: Path) -> None:
    rows = SqliteRowsById(str(tmp_path / "missing.db"))
    with pytest.raises(DatabaseUnavailable):
        await rows([uuid.uuid4()])
    await rows.close()
