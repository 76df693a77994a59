"""bench.seed loads what the service accepts: a seeded user logs in, and its
seeded session is live and refreshed by its seeded refresh token. `make
bench-scale` measures on these rows, so a schema change must not leave the
seed behind."""

from datetime import datetime, timedelta

from httpx import AsyncClient
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.infra.db.models import refresh_tokens_table, sessions_table, users_table
from bench.seed import (
    SEED_PASSWORD,
    SEED_USER_AGENT,
    Lifetimes,
    Plan,
    hash_seed_password,
    seed,
    seed_email,
    seed_refresh_token,
)
from tests.api.helpers import bearer

LIFETIMES = Lifetimes(session=timedelta(days=30), refresh_token=timedelta(days=7))


async def _seed(url: str, count: int) -> int:
    hashed = await hash_seed_password(rounds=4)
    return await seed(
        Plan(url, count, batch=2, start=None, hashed_password=hashed, lifetimes=LIFETIMES)
    )


async def _count(engine: AsyncEngine, table: Table) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(table)) or 0)


async def test_each_seeded_user_has_one_session_and_one_refresh_token(
    database_url: str, clean_engine: AsyncEngine
) -> None:
    assert await _seed(database_url, 5) == 0
    assert await _seed(database_url, 2) == 5  # a second run continues after the first
    for table in (users_table, sessions_table, refresh_tokens_table):
        assert await _count(clean_engine, table) == 7, table.name


async def test_a_seeded_refresh_token_refreshes_its_users_live_session(
    database_url: str, clean_engine: AsyncEngine, client: AsyncClient
) -> None:
    await _seed(database_url, 3)

    refreshed = await client.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": seed_refresh_token(1).value},
    )

    assert refreshed.status_code == 200, refreshed.text
    headers = bearer(refreshed.json()["access_token"])
    me = await client.get("/users/me", headers=headers)
    assert me.json()["email"] == seed_email(1)
    (session,) = (await client.get("/users/me/sessions", headers=headers)).json()["items"]
    assert session["user_agent"] == SEED_USER_AGENT
    created = datetime.fromisoformat(session["created_at"])
    assert datetime.fromisoformat(session["expires_at"]) - created == LIFETIMES.session


async def test_a_seeded_user_logs_in_with_the_seed_password(
    database_url: str, clean_engine: AsyncEngine, client: AsyncClient
) -> None:
    await _seed(database_url, 2)

    login = await client.post(
        "/auth/token", data={"username": seed_email(0), "password": SEED_PASSWORD}
    )

    assert login.status_code == 200, login.text
    sessions = await client.get("/users/me/sessions", headers=bearer(login.json()["access_token"]))
    assert len(sessions.json()["items"]) == 2  # the seeded one and this login's
