"""Sessions across two real server processes on one PostgreSQL database.

What one process cannot show: a session ended on one process is ended on
the other at its next request, and a refresh token is spent once however
many processes race for it, because both live in the database. The
servers are real `uvicorn` subprocesses, so they do not count towards
coverage.
"""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests import server_process
from tests.server_process import ServerProcess

PASSWORD = "correct-horse-battery"
EMAIL = "ann@example.com"
REQUEST_TIMEOUT_SECONDS = 60.0
RACERS = 20
GRACE_SECONDS = 60


def start_pair(
    database_url: str, workdir: Path, reuse_interval: int
) -> Iterator[list[ServerProcess]]:
    """Two server processes on the same database, with this reuse interval."""
    env = server_process.app_env(
        database_url,
        DB_POOL_SIZE="5",
        REFRESH_TOKEN_REUSE_INTERVAL_SECONDS=str(reuse_interval),
    )
    yield from server_process.serve(env, workdir)


@pytest.fixture(scope="module")
def strict_servers(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServerProcess]]:
    """REFRESH_TOKEN_REUSE_INTERVAL_SECONDS=0: any second presentation is reuse."""
    yield from start_pair(postgres_url, tmp_path_factory.mktemp("strict"), 0)


@pytest.fixture(scope="module")
def grace_servers(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServerProcess]]:
    """A reuse interval no test outlasts: one more pair, then reuse."""
    yield from start_pair(postgres_url, tmp_path_factory.mktemp("grace"), GRACE_SECONDS)


@pytest.fixture
async def strict(
    strict_servers: list[ServerProcess], clean_engine: AsyncEngine
) -> AsyncIterator[list[httpx.AsyncClient]]:
    async with server_process.clients_of(strict_servers, REQUEST_TIMEOUT_SECONDS) as clients:
        yield clients


@pytest.fixture
async def grace(
    grace_servers: list[ServerProcess], clean_engine: AsyncEngine
) -> AsyncIterator[list[httpx.AsyncClient]]:
    async with server_process.clients_of(grace_servers, REQUEST_TIMEOUT_SECONDS) as clients:
        yield clients


def describe(responses: list[httpx.Response]) -> str:
    return "\n".join(f"{r.request.url} -> {r.status_code} {r.text[:200]}" for r in responses)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(client: httpx.AsyncClient) -> dict[str, Any]:
    """Registers Ann (once) and starts a session; returns its tokens."""
    await client.post("/users", json={"name": "Ann", "email": EMAIL, "password": PASSWORD})
    response = await client.post("/auth/token", data={"username": EMAIL, "password": PASSWORD})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token}
    )


async def me(client: httpx.AsyncClient, access_token: str) -> httpx.Response:
    return await client.get("/users/me", headers=bearer(access_token))


async def assert_works_on_both(clients: list[httpx.AsyncClient], access_token: str) -> None:
    for client in clients:
        response = await me(client, access_token)
        assert response.status_code == 200, response.text


async def assert_refused_on_both(clients: list[httpx.AsyncClient], pair: dict[str, Any]) -> None:
    for client in clients:
        response = await me(client, pair["access_token"])
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        refused = await refresh(client, pair["refresh_token"])
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"] == "invalid_grant"


async def race(clients: list[httpx.AsyncClient], refresh_token: str) -> list[httpx.Response]:
    """RACERS refreshes of one token at once, alternating processes."""
    return list(
        await asyncio.gather(*(refresh(clients[n % 2], refresh_token) for n in range(RACERS)))
    )


def winners(responses: list[httpx.Response]) -> list[dict[str, Any]]:
    for response in responses:
        if response.status_code == 400:
            assert response.json()["error"] == "invalid_grant", response.text
    return [r.json() for r in responses if r.status_code == 200]


async def test_a_logout_on_one_process_ends_the_session_on_the_other(
    grace: list[httpx.AsyncClient],
) -> None:
    first, second = grace
    pair, other = await login(first), await login(second)
    # Each process has seen, and verified, the access token.
    await assert_works_on_both(grace, pair["access_token"])

    response = await first.post("/auth/logout", headers=bearer(pair["access_token"]))

    assert response.status_code == 204, response.text
    await assert_refused_on_both([second, first], pair)
    await assert_works_on_both(grace, other["access_token"])


async def test_a_revocation_on_one_process_ends_the_session_on_the_other(
    grace: list[httpx.AsyncClient],
) -> None:
    first, second = grace
    pair = await login(first)
    await assert_works_on_both(grace, pair["access_token"])

    response = await second.post("/auth/revoke", data={"token": pair["refresh_token"]})

    assert response.status_code == 200, response.text
    await assert_refused_on_both(grace, pair)


async def test_a_pair_refreshed_on_one_process_works_on_the_other(
    grace: list[httpx.AsyncClient],
) -> None:
    first, second = grace
    pair = await login(first)

    response = await refresh(second, pair["refresh_token"])

    assert response.status_code == 200, response.text
    rotated = response.json()
    await assert_works_on_both(grace, rotated["access_token"])
    again = await refresh(first, rotated["refresh_token"])
    assert again.status_code == 200, again.text


async def test_simultaneous_refreshes_on_both_processes_rotate_once_when_strict(
    strict: list[httpx.AsyncClient],
) -> None:
    pair = await login(strict[0])

    responses = await race(strict, pair["refresh_token"])

    assert Counter(r.status_code for r in responses) == {200: 1, 400: RACERS - 1}, describe(
        responses
    )
    (winner,) = winners(responses)
    # The losers presented a spent token: reuse, which ended the session.
    await assert_refused_on_both(strict, winner)
    await assert_refused_on_both(strict, pair)


async def test_simultaneous_refreshes_on_both_processes_yield_two_pairs_within_the_grace(
    grace: list[httpx.AsyncClient],
) -> None:
    pair = await login(grace[0])

    responses = await race(grace, pair["refresh_token"])

    assert Counter(r.status_code for r in responses) == {200: 2, 400: RACERS - 2}, describe(
        responses
    )
    rotation, sibling = winners(responses)
    assert rotation["refresh_token"] != sibling["refresh_token"]
    # Past the one more pair, the presentations were reuse: the session ended.
    for won in (rotation, sibling):
        await assert_refused_on_both(grace, won)
