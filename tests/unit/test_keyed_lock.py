import asyncio

import pytest

from app.infra.keyed_lock import KeyedLock


async def test_one_holder_per_key_in_arrival_order() -> None:
    locks, order = KeyedLock(), []

    async def hold(name: str) -> None:
        async with locks.hold("ann"):
            order.append(f"{name} in")
            await asyncio.sleep(0)
            order.append(f"{name} out")

    await asyncio.gather(hold("first"), hold("second"), hold("third"))

    assert order == [f"{n} {s}" for n in ("first", "second", "third") for s in ("in", "out")]


async def test_other_keys_do_not_wait() -> None:
    locks, release = KeyedLock(), asyncio.Event()

    async def hold_ann() -> None:
        async with locks.hold("ann"):
            await release.wait()

    holder = asyncio.create_task(hold_ann())
    await asyncio.sleep(0)
    async with asyncio.timeout(1), locks.hold("bob"):
        pass
    release.set()
    await holder


async def test_keys_nobody_holds_take_no_memory() -> None:
    locks = KeyedLock()
    async with locks.hold("ann"):
        assert len(locks) == 1
    assert len(locks) == 0

    with pytest.raises(ValueError, match="failed inside"):
        async with locks.hold("bob"):
            raise ValueError("failed inside")
    assert len(locks) == 0


async def test_a_cancelled_waiter_leaves_nothing_behind() -> None:
    locks, release = KeyedLock(), asyncio.Event()

    async def hold_until_released() -> None:
        async with locks.hold("ann"):
            await release.wait()

    holder = asyncio.create_task(hold_until_released())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(hold_until_released())
    await asyncio.sleep(0)
    waiter.cancel()
    release.set()
    await holder
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert len(locks) == 0


async def test_a_waiter_past_its_patience_gets_busy_and_leaves_nothing_behind() -> None:
    locks, release = KeyedLock(wait_seconds=0.01, busy=lambda: LookupError("busy")), asyncio.Event()

    async def hold_until_released() -> None:
        async with locks.hold("ann"):
            await release.wait()

    holder = asyncio.create_task(hold_until_released())
    await asyncio.sleep(0)
    with pytest.raises(LookupError, match="busy"):
        async with locks.hold("ann"):
            pytest.fail("got a turn while the key was held")
    release.set()
    await holder
    assert len(locks) == 0
    async with locks.hold("ann"):  # free again
        pass
