"""Sustained overload of the hashing threads is shed with 503 and Retry-After,
in each endpoint's error shape; nothing else is refused."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from asgi_lifespan import LifespanManager
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.main import create_app
from tests.api.helpers import PASSWORD, bearer, register, token_response
from tests.conftest import make_settings


@pytest.fixture
async def one_slow_hasher(
    database_url: str, clean_engine: AsyncEngine
) -> AsyncIterator[AsyncClient]:
    # One hashing thread, ~50-100 ms per hash, and almost no patience in the queue.
    settings = make_settings(
        database_url, BCRYPT_ROUNDS=10, HASH_WORKERS=1, HASH_QUEUE_TIMEOUT_SECONDS=0.01
    )
    app = create_app(settings)
    async with (
        LifespanManager(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http,
    ):
        yield http


async def test_logins_that_cannot_get_a_hashing_slot_get_503(one_slow_hasher: AsyncClient) -> None:
    # Six accounts: logins of one account are checked one at a time anyway.
    emails = [f"user{n}@example.com" for n in range(6)]
    for email in emails:
        await register(one_slow_hasher, email)

    answers = await asyncio.gather(*(token_response(one_slow_hasher, e) for e in emails))

    statuses = sorted(a.status_code for a in answers)
    assert statuses[0] == 200  # the first got the slot
    assert 503 in statuses
    assert set(statuses) <= {200, 503}
    for shed in (a for a in answers if a.status_code == 503):
        assert shed.json()["error"] == "temporarily_unavailable"
        assert int(shed.headers["Retry-After"]) >= 1
        assert shed.headers["Cache-Control"] == "no-store"


async def test_a_shed_registration_is_503_with_detail_and_reads_still_work(
    one_slow_hasher: AsyncClient,
) -> None:
    await register(one_slow_hasher)
    token = (await token_response(one_slow_hasher, "ann@example.com")).json()["access_token"]

    bodies = [{"name": "N", "email": f"n{i}@example.com", "password": PASSWORD} for i in range(6)]
    answers, me = await asyncio.gather(
        asyncio.gather(*(one_slow_hasher.post("/users", json=b) for b in bodies)),
        one_slow_hasher.get("/users/me", headers=bearer(token)),
    )

    shed = [a for a in answers if a.status_code == 503]
    assert shed
    assert all(a.status_code in (201, 503) for a in answers)
    assert all(set(a.json()) == {"detail"} and a.headers["Retry-After"] for a in shed)
    assert me.status_code == 200  # no hashing, so never shed
