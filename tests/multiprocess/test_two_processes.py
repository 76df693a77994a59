"""Two real server processes on one PostgreSQL database.

What one process cannot show: uniqueness, the login lockout, token
revocation and (v2) the per-client limit of the recovery endpoints must hold
across processes, because they live in the database.
The servers are real `uvicorn` subprocesses, so they do not count towards
coverage.
"""

import asyncio
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests import server_process
from tests.server_process import ServerProcess

PASSWORD = "correct-horse-battery"
NEW_PASSWORD = "staple-lamp-orbit"
MAX_FAILURES = 3
LOCKOUT_SECONDS = 900
RECOVERY_LIMIT = 5
REQUEST_TIMEOUT_SECONDS = 60.0


def server_env(database_url: str) -> dict[str, str]:
    return server_process.app_env(
        database_url,
        DB_POOL_SIZE="5",
        LOGIN_MAX_FAILURES=str(MAX_FAILURES),
        LOGIN_LOCKOUT_SECONDS=str(LOCKOUT_SECONDS),
        RECOVERY_REQUESTS_PER_HOUR=str(RECOVERY_LIMIT),
    )


@pytest.fixture(scope="module")
def servers(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServerProcess]]:
    """Two server processes on the same database."""
    yield from server_process.serve(server_env(postgres_url), tmp_path_factory.mktemp("servers"))


@pytest.fixture
async def clients(
    servers: list[ServerProcess], clean_engine: AsyncEngine
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One client per server, over emptied tables."""
    async with server_process.clients_of(servers, REQUEST_TIMEOUT_SECONDS) as clients:
        yield clients


def describe(responses: list[httpx.Response]) -> str:
    return "\n".join(f"{r.request.url} -> {r.status_code} {r.text[:200]}" for r in responses)


def assert_no_server_errors(responses: list[httpx.Response]) -> None:
    failed = [r for r in responses if r.status_code >= 500]
    assert not failed, describe(failed)


async def register(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> httpx.Response:
    return await client.post("/users", json={"name": "Ann", "email": email, "password": password})


async def token_response(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/auth/token", data={"username": email, "password": password})


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    response = await token_response(client, email, password)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})


async def test_both_processes_serve_the_same_users(clients: list[httpx.AsyncClient]) -> None:
    created = await register(clients[0], "ann@example.com")
    assert created.status_code == 201, created.text

    assert (await register(clients[1], "ann@example.com")).status_code == 409
    response = await me(clients[1], await login(clients[1], "ann@example.com"))
    assert response.status_code == 200, response.text
    assert response.json()["id"] == created.json()["id"]


async def test_concurrent_registrations_of_one_email_across_processes_create_one_user(
    clients: list[httpx.AsyncClient], clean_engine: AsyncEngine
) -> None:
    emails = [f"race{n}@example.com" for n in range(3)]
    # Ten at once per email, each with its own password, alternating servers.
    attempts = [(email, f"{PASSWORD}-{k}") for email in emails for k in range(10)]

    responses = await asyncio.gather(
        *(register(clients[i % 2], email, password) for i, (email, password) in enumerate(attempts))
    )

    assert_no_server_errors(responses)
    outcomes: dict[str, list[tuple[str, httpx.Response]]] = defaultdict(list)
    for (email, password), response in zip(attempts, responses, strict=True):
        outcomes[email].append((password, response))
    for email, results in outcomes.items():
        mine = [response for _, response in results]
        assert Counter(r.status_code for r in mine) == {201: 1, 409: 9}, describe(mine)
        assert all(
            r.json() == {"detail": "User already exists"} for r in mine if r.status_code == 409
        )
        # The winner's password is the one stored: it logs in through either process.
        (winner,) = [password for password, r in results if r.status_code == 201]
        for client in clients:
            await login(client, email, winner)
    async with clean_engine.connect() as connection:
        rows = (
            await connection.execute(text("SELECT email, count(*) FROM users GROUP BY email"))
        ).all()
    assert sorted(tuple(row) for row in rows) == [(email, 1) for email in emails]


async def test_login_lockout_counts_failures_from_both_processes(
    clients: list[httpx.AsyncClient],
) -> None:
    email = "locked@example.com"
    assert (await register(clients[0], email)).status_code == 201

    # Alternating, so neither process alone sees MAX_FAILURES failures.
    for attempt in range(MAX_FAILURES):
        response = await token_response(clients[attempt % 2], email, "wrong-password-guess")
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_grant"

    for client in clients:  # even the right password is refused now, on either process
        response = await token_response(client, email, PASSWORD)
        assert response.status_code == 429, response.text
        assert response.json()["error"] == "temporarily_unavailable"
        assert 0 < int(response.headers["Retry-After"]) <= LOCKOUT_SECONDS


async def test_a_burst_split_across_processes_checks_at_most_the_limit(
    clients: list[httpx.AsyncClient],
) -> None:
    email = "burst@example.com"
    assert (await register(clients[0], email)).status_code == 201
    burst = [
        asyncio.create_task(token_response(clients[n % 2], email, "wrong-password-guess"))
        for n in range(50)
    ]
    # Once MAX_FAILURES have answered, that many attempts were counted: the
    # right password, sent now while the rest is in flight, is past the limit.
    for answered, done in enumerate(asyncio.as_completed(burst), start=1):
        await done
        if answered == MAX_FAILURES:
            break
    right = await asyncio.gather(*(token_response(c, email, PASSWORD) for c in clients))
    responses = await asyncio.gather(*burst)

    assert_no_server_errors(responses)
    statuses = Counter(r.status_code for r in responses)
    # A 400 is a password that was checked; the rest were refused unchecked.
    assert statuses == {400: MAX_FAILURES, 429: 50 - MAX_FAILURES}, describe(responses)
    for response in right:
        assert response.status_code == 429, response.text
        assert response.json()["error"] == "temporarily_unavailable"


async def test_the_recovery_limit_counts_a_burst_split_across_processes_once(
    clients: list[httpx.AsyncClient], clean_engine: AsyncEngine
) -> None:
    body = {"email": "ann@example.com"}
    burst = [clients[n % 2].post("/auth/password/forgot", json=body) for n in range(20)]

    responses = await asyncio.gather(*burst)

    assert_no_server_errors(responses)
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {202: RECOVERY_LIMIT, 429: 20 - RECOVERY_LIMIT}, describe(responses)
    for client in clients:  # the client is over the limit on either process now
        response = await client.post("/auth/verify-email", json={"token": "never-issued"})
        assert response.status_code == 429, response.text
        assert 1 <= int(response.headers["Retry-After"]) <= 3600
    async with clean_engine.connect() as connection:
        recorded = await connection.execute(text("SELECT count(*) FROM mail_requests"))
        # Only the requests within the limit were recorded (or already taken
        # by a dispatcher, which deletes them): never more.
        assert recorded.scalar_one() <= RECOVERY_LIMIT


async def test_tokens_work_across_processes_and_a_password_change_revokes_them_on_both(
    clients: list[httpx.AsyncClient],
) -> None:
    first, second = clients
    email = "token@example.com"
    created = await register(first, email)
    assert created.status_code == 201, created.text
    old_token = await login(first, email)
    for client in clients:
        response = await me(client, old_token)
        assert response.status_code == 200, response.text
        assert response.json()["id"] == created.json()["id"]

    changed = await second.post(
        "/users/me/password",
        headers={"Authorization": f"Bearer {old_token}"},
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 204, changed.text

    for client in clients:
        response = await me(client, old_token)
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await token_response(client, email, PASSWORD)).status_code == 400
    for issuer in clients:  # a token issued after the change, by either process, works on both
        new_token = await login(issuer, email, NEW_PASSWORD)
        for client in clients:
            response = await me(client, new_token)
            assert response.status_code == 200, response.text
