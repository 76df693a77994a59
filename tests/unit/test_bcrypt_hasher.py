import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from app.core.exceptions import HashingBusy
from app.core.value_objects import HashedPassword, Password
from app.infra.security.bcrypt_hasher import BcryptPasswordHasher

PASSWORD = Password("correct-horse-9")


@contextmanager
def hasher(
    rounds: int = 4, workers: int = 2, queue_timeout: float = 10
) -> Iterator[BcryptPasswordHasher]:
    made = BcryptPasswordHasher(rounds=rounds, workers=workers, queue_timeout=queue_timeout)
    try:
        yield made
    finally:
        made.close()


async def test_hash_then_verify() -> None:
    with hasher() as h:
        hashed = await h.hash(PASSWORD)
        assert await h.verify(PASSWORD.value, hashed)


async def test_hash_is_bcrypt_with_the_configured_rounds_and_never_the_plain_password() -> None:
    with hasher(rounds=5) as h:
        hashed = await h.hash(PASSWORD)
    assert hashed.value.startswith("$2b$05$")
    assert PASSWORD.value not in hashed.value


async def test_hashes_are_salted() -> None:
    with hasher() as h:
        first, second = await h.hash(PASSWORD), await h.hash(PASSWORD)
        assert first != second
        assert await h.verify(PASSWORD.value, first)
        assert await h.verify(PASSWORD.value, second)


@pytest.mark.parametrize("candidate", ["wrong-password", "", "Correct-horse-9", "correct-horse-9 "])
async def test_wrong_password_does_not_verify(candidate: str) -> None:
    with hasher() as h:
        assert not await h.verify(candidate, await h.hash(PASSWORD))


async def test_multibyte_password_at_72_bytes_round_trips() -> None:
    password = Password("€" * 24)
    with hasher() as h:
        hashed = await h.hash(password)
        assert await h.verify("€" * 24, hashed)
        assert not await h.verify("€" * 23 + "e", hashed)


@pytest.mark.parametrize(
    "hashed", ["garbage", "$2b$04$tooshort", "$1$md5crypt$xyz", "\x00", "é" * 60]
)
async def test_malformed_hash_does_not_verify(hashed: str) -> None:
    with hasher() as h:
        assert not await h.verify(PASSWORD.value, HashedPassword(hashed))


@pytest.mark.parametrize("cost", ["$2b$03$", "$2b$32$", "$2b$99$", "$9z$04$"])
async def test_hash_with_an_impossible_cost_or_scheme_does_not_verify(cost: str) -> None:
    with hasher() as h:
        real = await h.hash(PASSWORD)
        assert not await h.verify(PASSWORD.value, HashedPassword(cost + real.value[7:]))


@pytest.mark.parametrize("suffix", ["x", "€", "x" * 1000])
async def test_candidate_over_72_bytes_is_false_not_an_error(suffix: str) -> None:
    # The first 72 bytes match: a truncating bcrypt would say yes.
    seventy_two = "k" * 72
    with hasher() as h:
        hashed = await h.hash(Password(seventy_two))
        assert not await h.verify(seventy_two + suffix, hashed)


@pytest.mark.parametrize("candidate", ["pass\x00word", "\ud800surrogate"])
async def test_candidate_bcrypt_cannot_take_is_false_not_an_error(candidate: str) -> None:
    with hasher() as h:
        assert not await h.verify(candidate, await h.hash(PASSWORD))


async def test_needs_rehash_when_the_hash_has_fewer_rounds_than_configured() -> None:
    with hasher(rounds=4) as weak, hasher(rounds=5) as strong:
        old = await weak.hash(PASSWORD)
        assert await strong.needs_rehash(old)
        assert await strong.verify(PASSWORD.value, old)  # still readable until upgraded


@pytest.mark.parametrize("candidate", ["anything-at-all", "", "€" * 100, "nul\x00", "\ud800"])
async def test_verify_dummy_takes_any_candidate_without_error(candidate: str) -> None:
    with hasher() as h:
        await h.verify_dummy(candidate)


async def test_verify_dummy_spends_hashing_capacity_like_verify() -> None:
    with hasher(rounds=6, workers=1, queue_timeout=0.05) as h:
        results = await asyncio.gather(
            *(h.verify_dummy(PASSWORD.value) for _ in range(200)), return_exceptions=True
        )
    assert any(isinstance(r, HashingBusy) for r in results)
    assert None in results


async def test_busy_when_no_slot_frees_up_within_the_queue_timeout() -> None:
    # One worker and far more queued rounds-6 verifications than fit in 50 ms.
    with hasher(rounds=6, workers=1, queue_timeout=0.05) as h:
        hashed = await h.hash(PASSWORD)
        results = await asyncio.gather(
            *(h.verify(PASSWORD.value, hashed) for _ in range(200)), return_exceptions=True
        )
    busy = [r for r in results if isinstance(r, HashingBusy)]
    served = [r for r in results if r is True]
    assert busy
    assert served
    assert len(busy) + len(served) == len(results)
    assert all(b.retry_after >= 1 for b in busy)


async def test_slots_are_released_after_busy_and_after_errors() -> None:
    with hasher(rounds=6, workers=1, queue_timeout=0.05) as h:
        await asyncio.gather(
            *(h.verify_dummy(PASSWORD.value) for _ in range(200)), return_exceptions=True
        )
        assert not await h.verify("x", HashedPassword("garbage"))
        assert await h.verify(PASSWORD.value, await h.hash(PASSWORD))


async def test_waiting_within_the_queue_timeout_is_served() -> None:
    with hasher(rounds=4, workers=1, queue_timeout=10) as h:
        hashes = await asyncio.gather(*(h.hash(PASSWORD) for _ in range(10)))
    assert len(set(hashes)) == 10


async def test_hashing_does_not_block_the_event_loop() -> None:
    with hasher(rounds=10, workers=1) as h:
        task = asyncio.ensure_future(h.hash(PASSWORD))
        turns = 0
        while not task.done():
            await asyncio.sleep(0)
            turns += 1
        await task
    # A rounds-10 hash takes tens of milliseconds: the loop kept turning meanwhile.
    assert turns >= 20


# A failure costs the same whatever the stored hash's cost


def checked_hashes(h: BcryptPasswordHasher) -> list[str]:
    """The hashes bcrypt compares against, in order, from now on."""
    seen: list[str] = []
    verify = h._ctx.verify

    def spy(secret: str, hashed: str) -> bool:
        seen.append(hashed)
        return verify(secret, hashed)

    h._ctx.verify = spy  # type: ignore[method-assign,assignment]
    return seen


async def test_a_failure_against_a_cheaper_hash_also_spends_a_full_cost_check() -> None:
    with hasher(rounds=4) as cheap:
        cheaper = await cheap.hash(PASSWORD)
    with hasher(rounds=5) as h:
        seen = checked_hashes(h)
        assert not await h.verify("wrong-password", cheaper)
        assert seen[0] == cheaper.value
        assert len(seen) == 2
        assert seen[1].startswith("$2b$05$")  # the configured cost


async def test_a_success_or_a_same_cost_failure_checks_once() -> None:
    with hasher(rounds=4) as cheap:
        cheaper = await cheap.hash(PASSWORD)
    with hasher(rounds=5) as h:
        current = await h.hash(PASSWORD)
        seen = checked_hashes(h)
        assert await h.verify(PASSWORD.value, cheaper)
        assert not await h.verify("wrong-password", current)
        assert seen == [cheaper.value, current.value]


async def test_a_hash_of_another_cost_either_way_needs_a_rehash() -> None:
    # A costlier hash makes failures slower, which tells accounts apart too.
    with hasher(rounds=5) as h:
        for rounds in (4, 6):
            with hasher(rounds=rounds) as other:
                assert await h.needs_rehash(await other.hash(PASSWORD))
        assert not await h.needs_rehash(await h.hash(PASSWORD))
