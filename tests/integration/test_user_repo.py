"""SqlUserRepo against a real database, through the unit of work the app uses."""

import asyncio
import uuid
from datetime import timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.entities import User
from app.core.exceptions import EmailTaken
from app.core.value_objects import ID, Email, HashedPassword, Name, Role
from app.core.value_objects.page_cursor import PageCursor
from tests.integration.helpers import T0, a_user, fields, later, load, save, uow_for

OTHER_HASH = "$2b$04$zyxwvutsrqponmlkjihgfeuJ0aCw5mR1vS8pQ9zX2yT7uV6wK3lN4e"


def ordered(users: list[User]) -> list[ID]:
    return [u.id for u in sorted(users, key=lambda u: (u.created_at, u.id.value))]


async def page(
    engine: AsyncEngine,
    limit: int = 100,
    after: User | PageCursor | None = None,
    prefix: str | None = None,
) -> list[ID]:
    cursor = PageCursor(after.created_at, after.id) if isinstance(after, User) else after
    async with uow_for(engine) as uow:
        return [u.id for u in await uow.users.list_page(limit, cursor, prefix)]


async def emails(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set((await connection.scalars(text("SELECT email FROM users"))).all())


async def _blocked_or_done(engine: AsyncEngine, task: asyncio.Task[object]) -> None:
    """Returns once `task` waits for a row lock, so the test knows it read nothing yet.

    SQLite needs no wait: every transaction starts with BEGIN IMMEDIATE, so the
    second one cannot read anything before the first ends.
    """
    if engine.dialect.name != "postgresql":
        return
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    while not task.done():
        async with engine.connect() as connection:
            if await connection.scalar(query):
                return
        await asyncio.sleep(0.01)


async def test_add_then_get_round_trips_every_field(clean_engine: AsyncEngine) -> None:
    user = a_user(
        " Zoe.Admin+Ops@Example.COM ",
        "  Zoë Ünïcode 🚀 ",
        role=Role.ADMIN,
        is_active=False,
        created_at=T0,
        updated_at=later(3661.000001),
        token_version=7,
        email_verified=True,
    )
    await save(clean_engine, user)

    async with uow_for(clean_engine) as uow:
        by_id = await uow.users.get_by_id(user.id)
        by_email = await uow.users.get_by_email(Email("ZOE.ADMIN+ops@example.com"))

    assert by_id is not None
    assert by_email is not None
    assert fields(by_id) == fields(user) == fields(by_email)
    assert by_id.email.value == "zoe.admin+ops@example.com"
    assert by_id.name.value == "Zoë Ünïcode 🚀"
    for stored in (by_id.created_at, by_id.updated_at, by_email.created_at):
        assert stored.utcoffset() == timedelta(0)
    assert by_id.created_at == T0
    assert by_id.created_at.microsecond == T0.microsecond
    assert by_id.updated_at == later(3661.000001)
    assert by_id.email_verified is True


async def test_timestamps_with_another_utc_offset_keep_their_instant(
    clean_engine: AsyncEngine,
) -> None:
    plus_two = timezone(timedelta(hours=2))
    user = a_user(created_at=T0.astimezone(plus_two), updated_at=later(1).astimezone(plus_two))
    await save(clean_engine, user)

    stored = await load(clean_engine, user)

    assert stored is not None
    assert stored.created_at.utcoffset() == timedelta(0)
    assert (stored.created_at, stored.updated_at) == (T0, later(1))


async def test_get_returns_none_for_unknown_id_and_email(clean_engine: AsyncEngine) -> None:
    await save(clean_engine, a_user("ann@example.com"))

    async with uow_for(clean_engine) as uow:
        assert await uow.users.get_by_id(ID.new()) is None
        assert await uow.users.get_by_email(Email("bob@example.com")) is None
        assert await uow.users.get_for_update(ID.new()) is None


async def test_add_refuses_a_taken_email_then_the_unit_of_work_recovers(
    clean_engine: AsyncEngine,
) -> None:
    ann = a_user("ann@example.com", "Ann")
    await save(clean_engine, ann)
    early, impostor, late = (
        a_user("early@example.com"),
        a_user("ANN@example.com", "Impostor"),
        a_user("late@example.com"),
    )

    uow = uow_for(clean_engine)
    async with uow:
        await uow.users.add(early)
        with pytest.raises(EmailTaken):
            await uow.users.add(impostor)
        await uow.rollback()
        # The failed transaction is gone, the session is usable again.
        assert await uow.users.get_by_id(early.id) is None
        found = await uow.users.get_by_email(Email("ann@example.com"))
        assert found is not None
        assert found.id == ann.id
        await uow.users.add(late)
        await uow.commit()

    assert await emails(clean_engine) == {"ann@example.com", "late@example.com"}
    stored = await load(clean_engine, ann)
    assert stored is not None
    assert fields(stored) == fields(ann)


async def test_add_refuses_an_email_added_earlier_in_the_same_unit_of_work(
    clean_engine: AsyncEngine,
) -> None:
    async with uow_for(clean_engine) as uow:
        await uow.users.add(a_user("ann@example.com", "First"))
        with pytest.raises(EmailTaken):
            await uow.users.add(a_user("ANN@example.com", "Second"))

    assert await emails(clean_engine) == set()


async def test_update_refuses_a_taken_email_then_the_unit_of_work_recovers(
    clean_engine: AsyncEngine,
) -> None:
    ann, bob = a_user("ann@example.com", "Ann"), a_user("bob@example.com", "Bob")
    await save(clean_engine, ann, bob)

    uow = uow_for(clean_engine)
    async with uow:
        moved = await uow.users.get_by_id(bob.id)
        assert moved is not None
        moved.change_email(Email("ann@example.com"), later(60))
        with pytest.raises(EmailTaken):
            await uow.users.update(moved)
        await uow.rollback()
        renamed = await uow.users.get_by_id(bob.id)
        assert renamed is not None
        renamed.rename(Name("Robert"), later(120))
        await uow.users.update(renamed)
        await uow.commit()

    stored = await load(clean_engine, bob)
    assert stored is not None
    assert (stored.email.value, stored.name.value) == ("bob@example.com", "Robert")
    assert await emails(clean_engine) == {"ann@example.com", "bob@example.com"}


async def test_update_persists_every_change(clean_engine: AsyncEngine) -> None:
    user = a_user("ann@example.com", "Ann")
    await save(clean_engine, user)

    async with uow_for(clean_engine) as uow:
        changed = await uow.users.get_by_id(user.id)
        assert changed is not None
        changed.rename(Name("Annabel"), later(10))
        changed.change_email(Email("annabel@example.com"), later(20))
        changed.verify_email(later(25))
        changed.change_password(HashedPassword(OTHER_HASH), later(30))
        changed.change_role(Role.ADMIN, later(40))
        changed.deactivate(later(50.000001))
        await uow.users.update(changed)
        await uow.commit()

    stored = await load(clean_engine, user)
    assert stored is not None
    assert fields(stored) == fields(changed)
    assert stored.created_at == T0
    assert stored.updated_at == later(50.000001)
    assert stored.token_version == 2  # the password change and the deactivation
    assert stored.email_verified is True
    async with uow_for(clean_engine) as uow:
        assert await uow.users.get_by_email(Email("ann@example.com")) is None
        assert await uow.users.get_by_email(Email("annabel@example.com")) is not None


async def test_update_changes_only_that_user(clean_engine: AsyncEngine) -> None:
    ann, bob = a_user("ann@example.com", "Ann"), a_user("bob@example.com", "Bob")
    await save(clean_engine, ann, bob)

    async with uow_for(clean_engine) as uow:
        ann.rename(Name("Annabel"), later(10))
        await uow.users.update(ann)
        await uow.commit()

    stored_bob = await load(clean_engine, bob)
    assert stored_bob is not None
    assert fields(stored_bob) == fields(bob)


async def test_replace_hash_swaps_when_the_old_hash_matches(clean_engine: AsyncEngine) -> None:
    user = a_user(hashed_password="old-hash")
    await save(clean_engine, user)

    async with uow_for(clean_engine) as uow:
        await uow.users.replace_hash(user.id, HashedPassword("old-hash"), HashedPassword("new"))
        await uow.commit()

    stored = await load(clean_engine, user)
    assert stored is not None
    assert stored.hashed_password == HashedPassword("new")
    # A rehash keeps the tokens valid and is no profile change.
    assert (stored.token_version, stored.updated_at) == (user.token_version, user.updated_at)


async def test_replace_hash_keeps_a_hash_that_changed_meanwhile(clean_engine: AsyncEngine) -> None:
    user = a_user(hashed_password="changed-meanwhile")
    await save(clean_engine, user)

    async with uow_for(clean_engine) as uow:
        await uow.users.replace_hash(user.id, HashedPassword("stale"), HashedPassword("new"))
        await uow.commit()

    stored = await load(clean_engine, user)
    assert stored is not None
    assert stored.hashed_password == HashedPassword("changed-meanwhile")


async def test_delete_removes_only_that_user(clean_engine: AsyncEngine) -> None:
    ann, bob = a_user("ann@example.com"), a_user("bob@example.com")
    await save(clean_engine, ann, bob)

    async with uow_for(clean_engine) as uow:
        await uow.users.delete(ann.id)
        await uow.users.delete(ID.new())  # unknown ids are no error
        await uow.commit()

    assert await load(clean_engine, ann) is None
    assert await load(clean_engine, bob) is not None
    async with uow_for(clean_engine) as uow:
        assert await uow.users.get_by_email(Email("ann@example.com")) is None
        # The email is free again.
        await uow.users.add(a_user("ann@example.com", "New Ann"))
        await uow.commit()


async def test_lock_active_admins_names_only_active_admins_in_id_order(
    clean_engine: AsyncEngine,
) -> None:
    async with uow_for(clean_engine) as uow:
        assert await uow.users.lock_active_admins() == []
    admins = [
        a_user("admin1@example.com", role=Role.ADMIN),
        a_user("admin2@example.com", role=Role.ADMIN),
    ]
    await save(
        clean_engine,
        *admins,
        a_user("retired@example.com", role=Role.ADMIN, is_active=False),
        a_user("user@example.com", role=Role.USER),
        a_user("gone@example.com", role=Role.USER, is_active=False),
    )

    async with uow_for(clean_engine) as uow:
        assert await uow.users.lock_active_admins() == sorted(a.id for a in admins)


async def test_lock_active_admins_waits_for_a_concurrent_demotion(
    clean_engine: AsyncEngine,
) -> None:
    one = a_user("one@example.com", role=Role.ADMIN)
    two = a_user("two@example.com", role=Role.ADMIN)
    await save(clean_engine, one, two)

    async def lock() -> list[ID]:
        async with uow_for(clean_engine) as uow:
            return await uow.users.lock_active_admins()

    async with uow_for(clean_engine) as first:
        assert len(await first.users.lock_active_admins()) == 2
        one.change_role(Role.USER, later(1))
        await first.users.update(one)
        second: asyncio.Task[object] = asyncio.create_task(lock())
        await _blocked_or_done(clean_engine, second)
        await first.commit()

    # Had the second not waited for the lock, it would have seen `one` as an admin.
    assert await second == [two.id]


async def test_get_for_update_returns_the_user(clean_engine: AsyncEngine) -> None:
    user = a_user(role=Role.ADMIN, token_version=2, updated_at=later(5))
    await save(clean_engine, user)

    async with uow_for(clean_engine) as uow:
        locked = await uow.users.get_for_update(user.id)

    assert locked is not None
    assert fields(locked) == fields(user)


async def test_get_for_update_waits_for_a_concurrent_writer(clean_engine: AsyncEngine) -> None:
    user = a_user(name="Ann")
    await save(clean_engine, user)

    async def read_name() -> str | None:
        async with uow_for(clean_engine) as uow:
            found = await uow.users.get_for_update(user.id)
            return found.name.value if found else None

    async with uow_for(clean_engine) as first:
        locked = await first.users.get_for_update(user.id)
        assert locked is not None
        locked.rename(Name("Annabel"), later(1))
        await first.users.update(locked)
        second: asyncio.Task[object] = asyncio.create_task(read_name())
        await _blocked_or_done(clean_engine, second)
        await first.commit()

    assert await second == "Annabel"


async def test_list_page_orders_by_created_at_then_id(clean_engine: AsyncEngine) -> None:
    ids = sorted(uuid.uuid4() for _ in range(6))
    # Ties on created_at, a one-microsecond step, and ids inserted out of order.
    users = [
        a_user("e@example.com", created_at=later(0.000001), user_id=ids[0]),
        a_user("a@example.com", created_at=T0, user_id=ids[5]),
        a_user("b@example.com", created_at=T0, user_id=ids[1]),
        a_user("c@example.com", created_at=later(-86400), user_id=ids[4]),
        a_user("d@example.com", created_at=T0, user_id=ids[3]),
        a_user("f@example.com", created_at=later(0.000001), user_id=ids[2]),
    ]
    for user in users:  # separate transactions, so insertion order is observable
        await save(clean_engine, user)

    expected = ordered(users)
    assert expected[0] == users[3].id  # the oldest first
    assert expected[1:4] == [users[2].id, users[4].id, users[1].id]  # the tie, by id
    assert await page(clean_engine) == expected
    assert await page(clean_engine, limit=4) == expected[:4]


async def test_list_page_cursor_walks_every_user_once(clean_engine: AsyncEngine) -> None:
    users = [a_user(f"u{i}@example.com", created_at=later(i // 3)) for i in range(9)]
    await save(clean_engine, *reversed(users))
    expected = ordered(users)

    seen: list[ID] = []
    cursor: PageCursor | None = None
    while True:
        async with uow_for(clean_engine) as uow:
            chunk = await uow.users.list_page(2, cursor, None)
        if not chunk:
            break
        seen += [u.id for u in chunk]
        cursor = PageCursor(chunk[-1].created_at, chunk[-1].id)

    assert seen == expected


async def test_list_page_after_is_strictly_after(clean_engine: AsyncEngine) -> None:
    users = [a_user(f"u{i}@example.com", created_at=later(i // 2)) for i in range(6)]
    await save(clean_engine, *users)
    expected = ordered(users)
    by_id = {u.id: u for u in users}

    for position, user_id in enumerate(expected):
        assert await page(clean_engine, after=by_id[user_id]) == expected[position + 1 :]

    # A cursor between two tied ids, naming no user, starts at the larger id.
    first, second = by_id[expected[0]], by_id[expected[1]]
    assert first.created_at == second.created_at
    between = ID(uuid.UUID(int=first.id.value.int + 1))
    assert between.value < second.id.value
    assert await page(clean_engine, after=PageCursor(first.created_at, between)) == expected[1:]
    # Later than everyone: an empty page.
    assert await page(clean_engine, after=PageCursor(later(10), ID.new())) == []


async def test_list_page_cursor_with_another_utc_offset_means_the_same_instant(
    clean_engine: AsyncEngine,
) -> None:
    users = [a_user(f"u{i}@example.com", created_at=later(3600 * i)) for i in range(4)]
    await save(clean_engine, *users)
    cursor = PageCursor(users[1].created_at.astimezone(timezone(timedelta(hours=-5))), users[1].id)

    assert await page(clean_engine, after=cursor) == [users[2].id, users[3].id]


async def test_list_page_email_prefix_is_literal(clean_engine: AsyncEngine) -> None:
    percent, plain, underscore, letters, other = (
        a_user("a%b@example.com"),
        a_user("axb@example.com"),
        a_user("a_c@example.com"),
        a_user("abc@example.com"),
        a_user("zed@example.com"),
    )
    await save(clean_engine, percent, plain, underscore, letters, other)

    assert set(await page(clean_engine, prefix="a")) == {
        percent.id,
        plain.id,
        underscore.id,
        letters.id,
    }
    assert await page(clean_engine, prefix="a%") == [percent.id]
    assert await page(clean_engine, prefix="a_") == [underscore.id]
    assert await page(clean_engine, prefix="%") == []
    assert await page(clean_engine, prefix="_") == []
    # Backslash is no escape character of its own: "a\b" does not mean "ab".
    assert await page(clean_engine, prefix="a\\b") == []
    assert await page(clean_engine, prefix="\\a") == []
    assert await page(clean_engine, prefix="a\\%") == []
    assert await page(clean_engine, prefix="a\\_") == []
    assert await page(clean_engine, prefix="a\\") == []
    assert await page(clean_engine, prefix="\\") == []
    assert await page(clean_engine, prefix="zed@example.com") == [other.id]
    assert await page(clean_engine, prefix="zed@example.com.") == []


async def test_list_page_email_prefix_combines_with_cursor_and_limit(
    clean_engine: AsyncEngine,
) -> None:
    matching = [a_user(f"ann{i}@example.com", created_at=later(i)) for i in range(4)]
    await save(clean_engine, *matching, a_user("bob@example.com", created_at=later(1.5)))

    assert await page(clean_engine, limit=2, prefix="ann") == [matching[0].id, matching[1].id]
    assert await page(clean_engine, limit=2, after=matching[1], prefix="ann") == [
        matching[2].id,
        matching[3].id,
    ]


async def test_timestamps_are_utc_after_list_page(clean_engine: AsyncEngine) -> None:
    await save(clean_engine, a_user())

    async with uow_for(clean_engine) as uow:
        [listed] = await uow.users.list_page(10, None, None)

    assert listed.created_at == T0
    assert listed.created_at.utcoffset() == timedelta(0)
