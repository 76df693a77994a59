"""SqlUserUnitOfWork: one transaction per `async with` block; only commit() keeps writes."""

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.value_objects import Name
from tests.integration.helpers import a_user, later, load, save, uow_for


class Boom(Exception):
    pass


async def test_commit_persists(clean_engine: AsyncEngine) -> None:
    user = a_user()

    async with uow_for(clean_engine) as uow:
        await uow.users.add(user)
        await uow.commit()

    assert await load(clean_engine, user) is not None


async def test_leaving_the_block_without_commit_rolls_back(clean_engine: AsyncEngine) -> None:
    user = a_user()

    async with uow_for(clean_engine) as uow:
        await uow.users.add(user)
        # Visible inside its own transaction...
        assert await uow.users.get_by_id(user.id) is not None

    # ...and gone for everyone else.
    assert await load(clean_engine, user) is None


async def test_uncommitted_updates_and_deletes_are_rolled_back(clean_engine: AsyncEngine) -> None:
    ann, bob = a_user("ann@example.com", "Ann"), a_user("bob@example.com", "Bob")
    await save(clean_engine, ann, bob)

    async with uow_for(clean_engine) as uow:
        ann.rename(Name("Annabel"), later(1))
        await uow.users.update(ann)
        await uow.users.delete(bob.id)

    stored_ann, stored_bob = await load(clean_engine, ann), await load(clean_engine, bob)
    assert stored_ann is not None
    assert stored_ann.name == Name("Ann")
    assert stored_bob is not None


async def test_an_exception_in_the_block_rolls_back_everything(clean_engine: AsyncEngine) -> None:
    ann, bob = a_user("ann@example.com"), a_user("bob@example.com")

    async def add_both_then_fail() -> None:
        async with uow_for(clean_engine) as uow:
            await uow.users.add(ann)
            await uow.users.add(bob)
            raise Boom

    with pytest.raises(Boom):
        await add_both_then_fail()

    assert await load(clean_engine, ann) is None
    assert await load(clean_engine, bob) is None


async def test_writes_after_a_commit_are_rolled_back_alone(clean_engine: AsyncEngine) -> None:
    ann, bob = a_user("ann@example.com"), a_user("bob@example.com")

    async def commit_one_then_fail() -> None:
        async with uow_for(clean_engine) as uow:
            await uow.users.add(ann)
            await uow.commit()
            await uow.users.add(bob)
            raise Boom

    with pytest.raises(Boom):
        await commit_one_then_fail()

    assert await load(clean_engine, ann) is not None
    assert await load(clean_engine, bob) is None


async def test_explicit_rollback_discards_the_writes_so_far(clean_engine: AsyncEngine) -> None:
    discarded, kept = a_user("ann@example.com"), a_user("bob@example.com")

    async with uow_for(clean_engine) as uow:
        await uow.users.add(discarded)
        await uow.rollback()
        assert await uow.users.get_by_id(discarded.id) is None
        # The same unit of work goes on with a new transaction.
        await uow.users.add(kept)
        await uow.commit()

    assert await load(clean_engine, discarded) is None
    assert await load(clean_engine, kept) is not None


async def test_one_unit_of_work_serves_consecutive_blocks(clean_engine: AsyncEngine) -> None:
    ann, bob = a_user("ann@example.com"), a_user("bob@example.com")
    uow = uow_for(clean_engine)

    async with uow:
        await uow.users.add(ann)
    async with uow:
        assert await uow.users.get_by_id(ann.id) is None  # the first block was not committed
        await uow.users.add(bob)
        await uow.commit()

    assert await load(clean_engine, ann) is None
    assert await load(clean_engine, bob) is not None


async def test_using_it_outside_async_with_raises(clean_engine: AsyncEngine) -> None:
    uow = uow_for(clean_engine)

    with pytest.raises(RuntimeError, match="outside"):
        await uow.commit()
    with pytest.raises(RuntimeError, match="outside"):
        await uow.rollback()

    async with uow:
        await uow.users.add(a_user())

    with pytest.raises(RuntimeError, match="outside"):
        await uow.commit()
    with pytest.raises(RuntimeError, match="outside"):
        await uow.rollback()
    # Nothing was committed by the refused calls.
    async with uow_for(clean_engine) as fresh:
        assert await fresh.users.lock_active_admins() == []
        assert await fresh.users.list_page(10, None, None) == []
