"""A unit of work that fails midway leaves nothing half-written (both backends).

tests/integration/test_unit_of_work.py covers an exception raised by the
caller; here the failure comes from the database itself: the second of two
inserts breaks the unique email constraint.
"""

import pytest
from sqlalchemy.exc import PendingRollbackError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.exceptions import EmailTaken
from tests.integration.helpers import a_user, load, save, uow_for


async def test_a_conflict_midway_keeps_none_of_the_block(clean_engine: AsyncEngine) -> None:
    taken = a_user("taken@example.com")
    await save(clean_engine, taken)
    first, clash = a_user("first@example.com"), a_user("taken@example.com")

    async def add_then_clash() -> None:
        async with uow_for(clean_engine) as uow:
            await uow.users.add(first)
            await uow.users.add(clash)  # EmailTaken: the unique constraint
            await uow.commit()

    with pytest.raises(EmailTaken):
        await add_then_clash()

    assert await load(clean_engine, first) is None
    assert await load(clean_engine, clash) is None
    assert await load(clean_engine, taken) is not None


async def test_a_conflict_caught_inside_the_block_still_commits_nothing_before_it(
    clean_engine: AsyncEngine,
) -> None:
    """Even if the caller swallows the conflict, the commit is refused and the
    first insert does not survive on its own."""
    await save(clean_engine, a_user("taken@example.com"))
    first, clash = a_user("first@example.com"), a_user("taken@example.com")

    async with uow_for(clean_engine) as uow:
        await uow.users.add(first)
        with pytest.raises(EmailTaken):
            await uow.users.add(clash)
        with pytest.raises(PendingRollbackError):
            await uow.commit()

    assert await load(clean_engine, first) is None
