"""SqlOneTimeTokenRepo, SqlMailRequests and SqlOutbox against a real database,
through the unit of work the app uses."""

import asyncio
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.entities import OneTimeToken, TokenPurpose, User
from app.core.value_objects import Email
from app.core.value_objects.opaque_token import OpaqueToken
from app.infra.db.mapping import utc
from app.infra.db.models import mail_requests_table, outbox_table
from tests.integration.helpers import (
    T0,
    a_message,
    a_one_time_token,
    a_user,
    later,
    load_one_time_token,
    one_time_token_fields,
    save,
    save_one_time_tokens,
    uow_for,
)

CONCURRENT = 20
COOLDOWN = timedelta(minutes=1)
RESET, VERIFY = TokenPurpose.PASSWORD_RESET, TokenPurpose.EMAIL_VERIFICATION


async def use(engine: AsyncEngine, token: OneTimeToken, now: datetime) -> bool:
    """One use of the token, in a transaction of its own."""
    async with uow_for(engine) as uow:
        used = await uow.one_time_tokens.use(token.digest, now)
        await uow.commit()
        return used


async def void_all(
    engine: AsyncEngine, user: User, purpose: TokenPurpose | None, now: datetime
) -> None:
    async with uow_for(engine) as uow:
        await uow.one_time_tokens.void_all(user.id, purpose, now)
        await uow.commit()


async def stored(engine: AsyncEngine, token: OneTimeToken) -> OneTimeToken:
    found = await load_one_time_token(engine, token)
    assert found is not None
    return found


async def request(engine: AsyncEngine, purpose: TokenPurpose, email: str, at: datetime) -> None:
    async with uow_for(engine) as uow:
        await uow.mail_requests.add(purpose, Email(email), at)
        await uow.commit()


async def take(engine: AsyncEngine) -> tuple[TokenPurpose, Email] | None:
    """One dispatcher's take, in a transaction of its own."""
    async with uow_for(engine) as uow:
        taken = await uow.mail_requests.take()
        await uow.commit()
        return taken


async def claim(engine: AsyncEngine, email: str, now: datetime) -> bool:
    async with uow_for(engine) as uow:
        claimed = await uow.mail_requests.claim_cooldown(Email(email), now, COOLDOWN)
        await uow.commit()
        return claimed


async def pending_requests(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return len((await connection.execute(select(mail_requests_table))).all())


async def outbox_rows(engine: AsyncEngine) -> list[dict[str, object]]:
    async with engine.connect() as connection:
        rows = (await connection.execute(select(outbox_table))).mappings().all()
    return [dict(row) for row in rows]


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


# One-time tokens.


@pytest.mark.parametrize("purpose", list(TokenPurpose))
async def test_a_token_round_trips_by_its_digest_and_purpose(
    clean_engine: AsyncEngine, ann: User, purpose: TokenPurpose
) -> None:
    token = a_one_time_token(ann, purpose, created_at=later(0.000001))
    await save_one_time_tokens(clean_engine, token)

    found = await stored(clean_engine, token)

    assert one_time_token_fields(found) == one_time_token_fields(token)
    assert (found.used_at, found.voided_at) == (None, None)
    assert found.created_at.utcoffset() == timedelta(0)
    assert found.expires_at == later(0.000001) + timedelta(minutes=30)


async def test_a_digest_is_found_only_for_its_own_purpose(
    clean_engine: AsyncEngine, ann: User
) -> None:
    reset = a_one_time_token(ann, RESET)
    verification = a_one_time_token(ann, VERIFY)
    await save_one_time_tokens(clean_engine, reset, verification)

    async with uow_for(clean_engine) as uow:
        # A reset link presented as a verification link (and the other way round) is nothing.
        assert await uow.one_time_tokens.get(reset.digest, VERIFY) is None
        assert await uow.one_time_tokens.get(verification.digest, RESET) is None
        assert await uow.one_time_tokens.get(OpaqueToken.new().digest, RESET) is None
        found = await uow.one_time_tokens.get(reset.digest, RESET)
        assert found is not None
        assert one_time_token_fields(found) == one_time_token_fields(reset)


async def test_use_succeeds_once(clean_engine: AsyncEngine, ann: User) -> None:
    token, other = a_one_time_token(ann), a_one_time_token(ann)
    await save_one_time_tokens(clean_engine, token, other)

    assert await use(clean_engine, token, later(10.000001))
    assert not await use(clean_engine, token, later(20))

    assert (await stored(clean_engine, token)).used_at == later(10.000001)
    assert (await stored(clean_engine, other)).used_at is None


async def test_use_of_an_unknown_token_fails(clean_engine: AsyncEngine, ann: User) -> None:
    assert not await use(clean_engine, a_one_time_token(ann), later(10))


async def test_use_of_a_voided_token_fails(clean_engine: AsyncEngine, ann: User) -> None:
    token = a_one_time_token(ann)
    await save_one_time_tokens(clean_engine, token)
    await void_all(clean_engine, ann, RESET, later(5))

    assert not await use(clean_engine, token, later(10))

    found = await stored(clean_engine, token)
    assert (found.used_at, found.voided_at) == (None, later(5))


async def test_of_concurrent_uses_of_a_token_exactly_one_succeeds(
    clean_engine: AsyncEngine, ann: User
) -> None:
    token = a_one_time_token(ann)
    await save_one_time_tokens(clean_engine, token)
    moments = [later(10 + n) for n in range(CONCURRENT)]

    used = await asyncio.gather(*(use(clean_engine, token, moment) for moment in moments))

    assert used.count(True) == 1
    assert (await stored(clean_engine, token)).used_at == moments[used.index(True)]


async def test_void_all_of_a_purpose_voids_only_that_users_unused_tokens_of_it(
    clean_engine: AsyncEngine, ann: User, bob: User
) -> None:
    used, voided = a_one_time_token(ann, RESET), a_one_time_token(ann, RESET)
    await save_one_time_tokens(clean_engine, used, voided)
    assert await use(clean_engine, used, later(1))
    await void_all(clean_engine, ann, RESET, later(2))  # voids `voided`, not `used`
    resets = [a_one_time_token(ann, RESET), a_one_time_token(ann, RESET)]
    verification = a_one_time_token(ann, VERIFY)
    bobs = a_one_time_token(bob, RESET)
    await save_one_time_tokens(clean_engine, *resets, verification, bobs)

    await void_all(clean_engine, ann, RESET, later(10))

    assert [(await stored(clean_engine, t)).voided_at for t in resets] == [later(10)] * 2
    assert (await stored(clean_engine, voided)).voided_at == later(2)  # keeps its moment
    used_after = await stored(clean_engine, used)
    assert (used_after.used_at, used_after.voided_at) == (later(1), None)
    assert (await stored(clean_engine, verification)).voided_at is None
    assert (await stored(clean_engine, bobs)).voided_at is None
    assert await use(clean_engine, verification, later(11))
    assert not await use(clean_engine, resets[0], later(11))


async def test_void_all_without_a_purpose_voids_every_purpose(
    clean_engine: AsyncEngine, ann: User, bob: User
) -> None:
    reset, verification = a_one_time_token(ann, RESET), a_one_time_token(ann, VERIFY)
    bobs = a_one_time_token(bob, VERIFY)
    await save_one_time_tokens(clean_engine, reset, verification, bobs)

    await void_all(clean_engine, ann, None, later(10))

    assert (await stored(clean_engine, reset)).voided_at == later(10)
    assert (await stored(clean_engine, verification)).voided_at == later(10)
    assert (await stored(clean_engine, bobs)).voided_at is None
    assert not await use(clean_engine, reset, later(11))
    assert await use(clean_engine, bobs, later(11))


async def test_deleting_a_user_deletes_their_tokens(
    clean_engine: AsyncEngine, ann: User, bob: User
) -> None:
    anns = [a_one_time_token(ann, RESET), a_one_time_token(ann, VERIFY)]
    bobs = a_one_time_token(bob, RESET)
    await save_one_time_tokens(clean_engine, *anns, bobs)

    async with uow_for(clean_engine) as uow:
        await uow.users.delete(ann.id)
        await uow.commit()

    assert [await load_one_time_token(clean_engine, t) for t in anns] == [None, None]
    assert await load_one_time_token(clean_engine, bobs) is not None


# Mail requests.


async def test_take_returns_the_requests_oldest_first_then_none(clean_engine: AsyncEngine) -> None:
    await request(clean_engine, RESET, "second@example.com", later(2))
    await request(clean_engine, VERIFY, "First@Example.com", later(1.999999))
    await request(clean_engine, RESET, "third@example.com", later(3))

    taken = [await take(clean_engine) for _ in range(4)]

    assert taken == [
        (VERIFY, Email("first@example.com")),
        (RESET, Email("second@example.com")),
        (RESET, Email("third@example.com")),
        None,
    ]
    assert await pending_requests(clean_engine) == 0


async def test_a_take_that_is_not_committed_leaves_the_request(
    clean_engine: AsyncEngine,
) -> None:
    await request(clean_engine, RESET, "ann@example.com", later(1))

    async with uow_for(clean_engine) as uow:
        assert await uow.mail_requests.take() == (RESET, Email("ann@example.com"))

    assert await take(clean_engine) == (RESET, Email("ann@example.com"))
    assert await take(clean_engine) is None


async def test_concurrent_takes_take_each_request_exactly_once(
    clean_engine: AsyncEngine,
) -> None:
    emails = [f"u{n}@example.com" for n in range(5)]
    for n, address in enumerate(emails):
        await request(clean_engine, RESET, address, later(n))

    taken = await asyncio.gather(*(take(clean_engine) for _ in range(CONCURRENT)))

    got = [t[1].value for t in taken if t is not None]
    assert sorted(got) == emails  # each once: none twice, none left behind
    assert taken.count(None) == CONCURRENT - len(emails)
    assert await pending_requests(clean_engine) == 0


async def test_claim_cooldown_allows_one_mail_per_address_per_cooldown(
    clean_engine: AsyncEngine,
) -> None:
    assert await claim(clean_engine, "ann@example.com", T0)
    assert not await claim(clean_engine, "ANN@example.com", T0)
    assert not await claim(clean_engine, "ann@example.com", T0 + COOLDOWN - timedelta.resolution)
    assert await claim(clean_engine, "bob@example.com", later(1))  # every address its own
    assert await claim(clean_engine, "ann@example.com", T0 + COOLDOWN)
    # The cooldown starts again at the new claim.
    assert not await claim(clean_engine, "ann@example.com", T0 + COOLDOWN + timedelta(seconds=59))
    assert await claim(clean_engine, "ann@example.com", T0 + 3 * COOLDOWN)


async def test_a_claim_that_is_not_committed_leaves_the_cooldown(
    clean_engine: AsyncEngine,
) -> None:
    async with uow_for(clean_engine) as uow:
        assert await uow.mail_requests.claim_cooldown(Email("ann@example.com"), T0, COOLDOWN)

    assert await claim(clean_engine, "ann@example.com", later(1))


async def test_of_concurrent_claims_for_an_address_exactly_one_succeeds(
    clean_engine: AsyncEngine,
) -> None:
    claimed = await asyncio.gather(
        *(claim(clean_engine, "ann@example.com", later(n / 1000)) for n in range(CONCURRENT))
    )
    assert claimed.count(True) == 1


# The outbox.


async def test_an_added_message_is_a_pending_row(clean_engine: AsyncEngine) -> None:
    message = a_message("zoe@example.com", "Verify your email address")

    async with uow_for(clean_engine) as uow:
        await uow.outbox.add(message, later(5.000001))
        await uow.commit()

    (row,) = await outbox_rows(clean_engine)
    assert (row["to_email"], row["to_name"], row["subject"]) == (
        "zoe@example.com",
        "Ann Ångström",
        "Verify your email address",
    )
    assert (row["text_body"], row["html_body"]) == (message.text, message.html)
    assert row["attempts"] == 0
    assert isinstance(row["created_at"], datetime)
    assert isinstance(row["next_attempt_at"], datetime)
    assert utc(row["created_at"]) == utc(row["next_attempt_at"]) == later(5.000001)
    assert (row["sent_at"], row["failed_at"], row["last_error"]) == (None, None, None)


async def test_what_a_unit_of_work_leaves_uncommitted_is_not_kept(
    clean_engine: AsyncEngine, ann: User
) -> None:
    # Mail is written with the change that causes it: no commit, no mail.
    token = a_one_time_token(ann)
    async with uow_for(clean_engine) as uow:
        await uow.one_time_tokens.add(token)
        await uow.outbox.add(a_message(), T0)
        await uow.mail_requests.add(RESET, ann.email, T0)
        assert await uow.one_time_tokens.get(token.digest, RESET) is not None

    assert await load_one_time_token(clean_engine, token) is None
    assert await outbox_rows(clean_engine) == []
    assert await pending_requests(clean_engine) == 0
