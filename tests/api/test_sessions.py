"""Sessions and refresh tokens (v2): the refresh grant, rotation and reuse,
lifetimes, revocation, logout, the session list, and every way a session ends."""

import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from jose import jwt
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.infra.db.models import refresh_tokens_table, sessions_table, users_table
from app.main import create_app
from tests.api.helpers import (
    PASSWORD,
    admin_token,
    assert_detail,
    assert_shape_error,
    bearer,
    register,
    token_response,
)
from tests.conftest import TEST_SECRET, make_settings

ANN = "ann@example.com"
BOB = "bob@example.com"
NEW_PASSWORD = "staple-lamp-orbit"
TOKEN_FIELDS = {
    "access_token",
    "token_type",
    "expires_in",
    "refresh_token",
    "refresh_token_expires_in",
}
SESSION_FIELDS = {"id", "created_at", "last_used_at", "expires_at", "user_agent", "current"}
# 32 random bytes in URL-safe base64 without padding.
REFRESH_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
A_DAY_AGO = datetime.now(UTC) - timedelta(days=1)
LONG_GRACE = 300  # the largest allowed: no test depends on how fast it runs


class ClientFactory(Protocol):
    def __call__(self, **overrides: object) -> AbstractAsyncContextManager[AsyncClient]: ...


@pytest.fixture
def client_with(database_url: str, clean_engine: AsyncEngine) -> ClientFactory:
    """Clients of apps built with other settings, over the emptied tables."""

    @asynccontextmanager
    async def open_client(**overrides: object) -> AsyncIterator[AsyncClient]:
        application = create_app(make_settings(database_url, **overrides))
        async with (
            LifespanManager(application),
            AsyncClient(transport=ASGITransport(app=application), base_url="http://test") as http,
        ):
            yield http

    return open_client


# Steps


async def grant(
    client: AsyncClient, email: str = ANN, password: str = PASSWORD, user_agent: str = "test"
) -> dict[str, Any]:
    """A password grant: a new session's tokens."""
    response = await client.post(
        "/auth/token",
        data={"username": email, "password": password},
        headers={"User-Agent": user_agent},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def refresh(client: AsyncClient, refresh_token: str) -> Response:
    return await client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token}
    )


async def refreshed(client: AsyncClient, refresh_token: str) -> dict[str, Any]:
    response = await refresh(client, refresh_token)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def revoke(client: AsyncClient, **form: str) -> Response:
    return await client.post("/auth/revoke", data=form)


async def sessions(client: AsyncClient, access_token: str) -> list[dict[str, Any]]:
    response = await client.get("/users/me/sessions", headers=bearer(access_token))
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"items"}
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def session_id(access_token: str) -> str:
    sid: str = jwt.get_unverified_claims(access_token)["sid"]
    return sid


async def expire(engine: AsyncEngine, table_name: str, sid: str) -> None:
    """Moves the stored limit of a session, or of its refresh tokens, into the past."""
    if table_name == "sessions":
        statement = update(sessions_table).where(sessions_table.c.id == uuid.UUID(sid))
    else:
        statement = update(refresh_tokens_table).where(
            refresh_tokens_table.c.session_id == uuid.UUID(sid)
        )
    async with engine.begin() as connection:
        await connection.execute(statement.values(expires_at=A_DAY_AGO))


# What a live or an ended session looks like from outside


def assert_unauthenticated(response: Response) -> None:
    assert_detail(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def assert_oauth_error(response: Response, error: str) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error
    assert isinstance(body["error_description"], str)
    assert body["error_description"]
    assert response.headers["Cache-Control"] == "no-store"
    return body


async def assert_access_works(client: AsyncClient, access_token: str) -> None:
    # GET /users/me takes a fast path; the session list is an ordinary route.
    response = await client.get("/users/me", headers=bearer(access_token))
    assert response.status_code == 200, response.text
    await sessions(client, access_token)


async def assert_access_refused(client: AsyncClient, access_token: str) -> None:
    for response in (
        await client.get("/users/me", headers=bearer(access_token)),
        await client.get("/users/me/sessions", headers=bearer(access_token)),
    ):
        assert_unauthenticated(response)
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def assert_refresh_refused(client: AsyncClient, refresh_token: str) -> dict[str, Any]:
    return assert_oauth_error(await refresh(client, refresh_token), "invalid_grant")


async def assert_session_works(client: AsyncClient, pair: dict[str, Any]) -> dict[str, Any]:
    """Its access token is accepted and its refresh token rotates; returns the new pair."""
    await assert_access_works(client, pair["access_token"])
    new = await refreshed(client, pair["refresh_token"])
    await assert_access_works(client, new["access_token"])
    return new


async def assert_session_ended(client: AsyncClient, pair: dict[str, Any]) -> None:
    await assert_access_refused(client, pair["access_token"])
    await assert_refresh_refused(client, pair["refresh_token"])


# POST /auth/token, grant_type=password


async def test_password_grant_answers_a_refresh_token_and_its_lifetime(
    client: AsyncClient,
) -> None:
    await register(client)

    response = await token_response(client, ANN)

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == TOKEN_FIELDS
    assert body["token_type"] == "bearer"
    assert REFRESH_TOKEN_SHAPE.fullmatch(body["refresh_token"])
    # The defaults: 7 days of idle limit, below 30 days of absolute limit.
    assert body["refresh_token_expires_in"] == 7 * 24 * 60 * 60
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"


@pytest.mark.parametrize(
    ("refresh_minutes", "session_minutes", "expected_seconds"),
    [(30, 60, 30 * 60), (120, 60, 60 * 60)],
    ids=["idle-limit-first", "absolute-limit-first"],
)
async def test_refresh_token_lifetime_is_the_smaller_of_the_two_limits(
    client_with: ClientFactory, refresh_minutes: int, session_minutes: int, expected_seconds: int
) -> None:
    async with client_with(
        REFRESH_TOKEN_EXPIRE_MINUTES=refresh_minutes, SESSION_MAX_LIFETIME_MINUTES=session_minutes
    ) as client:
        await register(client)
        assert (await grant(client))["refresh_token_expires_in"] == expected_seconds


async def test_each_login_starts_a_session_of_its_own(client: AsyncClient) -> None:
    await register(client)
    first, second = await grant(client), await grant(client)

    assert session_id(first["access_token"]) != session_id(second["access_token"])
    assert first["refresh_token"] != second["refresh_token"]


# POST /auth/token, grant_type=refresh_token


async def test_refresh_answers_a_new_pair_that_works(client: AsyncClient) -> None:
    user = await register(client)
    old = await grant(client)

    response = await refresh(client, old["refresh_token"])

    assert response.status_code == 200, response.text
    new = response.json()
    assert set(new) == TOKEN_FIELDS
    assert new["token_type"] == "bearer"
    assert REFRESH_TOKEN_SHAPE.fullmatch(new["refresh_token"])
    assert new["refresh_token"] != old["refresh_token"]
    assert new["access_token"] != old["access_token"]
    assert 0 < new["refresh_token_expires_in"] <= old["refresh_token_expires_in"]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    assert session_id(new["access_token"]) == session_id(old["access_token"])
    me = await client.get("/users/me", headers=bearer(new["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == user["id"]
    renamed = await client.patch(
        "/users/me", headers=bearer(new["access_token"]), json={"name": "Annie"}
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Annie"


async def test_the_new_refresh_token_rotates_again(client: AsyncClient) -> None:
    await register(client)
    pair = await grant(client)

    for _ in range(3):
        pair = await assert_session_works(client, pair)


@pytest.mark.parametrize(
    "form",
    [{"grant_type": "refresh_token"}, {"grant_type": "refresh_token", "refresh_token": ""}],
    ids=["missing", "empty"],
)
async def test_refresh_without_a_token_is_invalid_request(
    client: AsyncClient, form: dict[str, str]
) -> None:
    assert_oauth_error(await client.post("/auth/token", data=form), "invalid_request")


@pytest.mark.parametrize(
    "token",
    ["x" * 43, "not a token at all", "é" * 10, "x" * 4000],
    ids=["shaped", "junk", "utf8", "long"],
)
async def test_unknown_refresh_token_is_invalid_grant(client: AsyncClient, token: str) -> None:
    await assert_refresh_refused(client, token)


async def test_an_access_token_is_not_a_refresh_token(client: AsyncClient) -> None:
    await register(client)
    pair = await grant(client)

    await assert_refresh_refused(client, pair["access_token"])
    await assert_session_works(client, pair)


async def test_every_refused_refresh_has_the_same_description(
    app: FastAPI, client: AsyncClient, clean_engine: AsyncEngine
) -> None:
    _, admin = await admin_token(app, client)
    await register(client, ANN)
    bob = await register(client, BOB)
    carol = await register(client, "carol@example.com")
    causes: dict[str, str] = {"unknown": "x" * 43}

    expired = await grant(client, ANN)
    await expire(clean_engine, "refresh_tokens", session_id(expired["access_token"]))
    causes["expired"] = expired["refresh_token"]

    past_limit = await grant(client, ANN)
    await expire(clean_engine, "sessions", session_id(past_limit["access_token"]))
    causes["session past its limit"] = past_limit["refresh_token"]

    logged_out = await grant(client, ANN)
    assert (
        await client.post("/auth/logout", headers=bearer(logged_out["access_token"]))
    ).status_code == 204
    causes["session ended"] = logged_out["refresh_token"]

    spent = await grant(client, ANN)
    await refreshed(client, spent["refresh_token"])
    await refreshed(client, spent["refresh_token"])  # the grace's one more pair
    await assert_refresh_refused(client, spent["refresh_token"])  # reuse
    causes["spent"] = spent["refresh_token"]

    inactive = await grant(client, BOB)
    deactivated = await client.patch(
        f"/users/{bob['id']}", headers=bearer(admin), json={"is_active": False}
    )
    assert deactivated.status_code == 200, deactivated.text
    causes["user deactivated"] = inactive["refresh_token"]

    # Inactive with its session still live: only the user's row says no.
    dave = await register(client, "dave@example.com")
    flipped = await grant(client, "dave@example.com")
    async with clean_engine.begin() as connection:
        await connection.execute(
            update(users_table)
            .where(users_table.c.id == uuid.UUID(dave["id"]))
            .values(is_active=False)
        )
    causes["user inactive"] = flipped["refresh_token"]

    deleted = await grant(client, "carol@example.com")
    gone = await client.delete(f"/users/{carol['id']}", headers=bearer(admin))
    assert gone.status_code == 204, gone.text
    causes["user deleted"] = deleted["refresh_token"]

    descriptions = {
        cause: (await assert_refresh_refused(client, token))["error_description"]
        for cause, token in causes.items()
    }
    assert len(set(descriptions.values())) == 1, descriptions


async def test_refused_refreshes_do_not_count_against_the_login_lockout(
    client: AsyncClient,
) -> None:
    await register(client)
    pair = await grant(client)

    # Twice the default LOGIN_MAX_FAILURES (5).
    for _ in range(10):
        await assert_refresh_refused(client, "x" * 43)
    for _ in range(10):
        await assert_refresh_refused(client, pair["access_token"])

    await grant(client)
    await assert_session_works(client, pair)


async def test_refresh_works_while_the_username_is_locked(client: AsyncClient) -> None:
    await register(client)
    pair = await grant(client)
    for _ in range(5):
        wrong = await token_response(client, ANN, "wrong-password-guess")
        assert_oauth_error(wrong, "invalid_grant")
    locked = await token_response(client, ANN)
    assert locked.status_code == 429, locked.text

    await assert_session_works(client, pair)

    # ...and the refresh did not lift the lockout either.
    assert (await token_response(client, ANN)).status_code == 429


# Reuse detection


async def test_within_the_grace_a_spent_token_yields_one_more_pair_then_reuse_ends_the_session(
    client_with: ClientFactory,
) -> None:
    async with client_with(REFRESH_TOKEN_REUSE_INTERVAL_SECONDS=LONG_GRACE) as client:
        await register(client)
        login = await grant(client)
        rotated = await refreshed(client, login["refresh_token"])

        sibling = await refreshed(client, login["refresh_token"])
        assert sibling["refresh_token"] != rotated["refresh_token"]
        assert session_id(sibling["access_token"]) == session_id(login["access_token"])
        await assert_access_works(client, sibling["access_token"])
        await assert_access_works(client, rotated["access_token"])

        await assert_refresh_refused(client, login["refresh_token"])

        for pair in (login, rotated, sibling):
            await assert_access_refused(client, pair["access_token"])
        for pair in (rotated, sibling):
            await assert_refresh_refused(client, pair["refresh_token"])


async def test_both_pairs_of_the_grace_keep_working(client_with: ClientFactory) -> None:
    async with client_with(REFRESH_TOKEN_REUSE_INTERVAL_SECONDS=LONG_GRACE) as client:
        await register(client)
        login = await grant(client)
        first_tab = await refreshed(client, login["refresh_token"])
        second_tab = await refreshed(client, login["refresh_token"])

        first_tab = await assert_session_works(client, first_tab)
        second_tab = await assert_session_works(client, second_tab)
        await assert_access_works(client, first_tab["access_token"])


async def test_the_default_grace_yields_one_more_pair(client: AsyncClient) -> None:
    await register(client)
    login = await grant(client)
    await refreshed(client, login["refresh_token"])

    await refreshed(client, login["refresh_token"])
    await assert_refresh_refused(client, login["refresh_token"])


async def test_with_a_strict_interval_the_second_presentation_ends_the_session(
    client_with: ClientFactory,
) -> None:
    async with client_with(REFRESH_TOKEN_REUSE_INTERVAL_SECONDS=0) as client:
        await register(client)
        login = await grant(client)
        rotated = await refreshed(client, login["refresh_token"])

        await assert_refresh_refused(client, login["refresh_token"])

        await assert_session_ended(client, rotated)
        await assert_access_refused(client, login["access_token"])


async def test_a_spent_token_presented_after_the_grace_ends_the_session(
    client_with: ClientFactory, clean_engine: AsyncEngine
) -> None:
    async with client_with(REFRESH_TOKEN_REUSE_INTERVAL_SECONDS=LONG_GRACE) as client:
        await register(client)
        login = await grant(client)
        rotated = await refreshed(client, login["refresh_token"])
        # Spent long ago, as far as the database knows.
        async with clean_engine.begin() as connection:
            await connection.execute(
                update(refresh_tokens_table)
                .where(refresh_tokens_table.c.spent_at.is_not(None))
                .values(spent_at=A_DAY_AGO)
            )

        await assert_refresh_refused(client, login["refresh_token"])

        await assert_session_ended(client, rotated)


async def test_reuse_ends_only_that_session(client_with: ClientFactory) -> None:
    async with client_with(REFRESH_TOKEN_REUSE_INTERVAL_SECONDS=0) as client:
        await register(client)
        stolen, other = await grant(client), await grant(client)
        await refreshed(client, stolen["refresh_token"])

        await assert_refresh_refused(client, stolen["refresh_token"])

        await assert_session_works(client, other)


# Idle and absolute limits


async def test_an_expired_refresh_token_is_refused(
    client: AsyncClient, clean_engine: AsyncEngine
) -> None:
    await register(client)
    pair = await grant(client)

    await expire(clean_engine, "refresh_tokens", session_id(pair["access_token"]))

    await assert_refresh_refused(client, pair["refresh_token"])


async def test_a_session_past_its_absolute_limit_refuses_its_tokens(
    client: AsyncClient, clean_engine: AsyncEngine
) -> None:
    await register(client)
    old, fresh = await grant(client), await grant(client)

    await expire(clean_engine, "sessions", session_id(old["access_token"]))

    await assert_session_ended(client, old)
    listed = await sessions(client, fresh["access_token"])
    assert [s["id"] for s in listed] == [session_id(fresh["access_token"])]


# MAX_SESSIONS_PER_USER


async def test_a_login_beyond_the_limit_ends_the_oldest_session(
    client_with: ClientFactory,
) -> None:
    async with client_with(MAX_SESSIONS_PER_USER=2) as client:
        await register(client)
        oldest, middle, newest = await grant(client), await grant(client), await grant(client)

        await assert_session_ended(client, oldest)
        listed = await sessions(client, newest["access_token"])
        assert [s["id"] for s in listed] == [
            session_id(newest["access_token"]),
            session_id(middle["access_token"]),
        ]
        await assert_session_works(client, middle)
        await assert_session_works(client, newest)


async def test_the_session_limit_is_per_user(client_with: ClientFactory) -> None:
    async with client_with(MAX_SESSIONS_PER_USER=2) as client:
        await register(client, ANN)
        await register(client, BOB)
        ann = [await grant(client, ANN), await grant(client, ANN)]

        for _ in range(3):
            await grant(client, BOB)

        for pair in ann:
            await assert_session_works(client, pair)


# POST /auth/revoke


def assert_revoked_answer(response: Response) -> None:
    assert response.status_code == 200, response.text
    assert response.content == b""
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("hint", [None, "refresh_token", "access_token"])
async def test_revoking_a_refresh_token_ends_its_session(
    client: AsyncClient, hint: str | None
) -> None:
    await register(client)
    pair, other = await grant(client), await grant(client)
    form = {"token": pair["refresh_token"]}
    if hint:
        form["token_type_hint"] = hint

    assert_revoked_answer(await revoke(client, **form))

    await assert_session_ended(client, pair)
    await assert_session_works(client, other)


@pytest.mark.parametrize("hint", [None, "access_token", "refresh_token"])
async def test_revoking_an_access_token_ends_its_session(
    client: AsyncClient, hint: str | None
) -> None:
    await register(client)
    pair, other = await grant(client), await grant(client)
    form = {"token": pair["access_token"]}
    if hint:
        form["token_type_hint"] = hint

    assert_revoked_answer(await revoke(client, **form))

    await assert_session_ended(client, pair)
    await assert_session_works(client, other)


@pytest.mark.parametrize(
    "token", ["junk", "x" * 43, "a.b.c", "x" * 4000], ids=["junk", "shaped", "jwt-like", "long"]
)
async def test_revoking_junk_answers_the_same_and_ends_nothing(
    client: AsyncClient, token: str
) -> None:
    await register(client)
    pair = await grant(client)

    assert_revoked_answer(await revoke(client, token=token))

    await assert_session_works(client, pair)


async def test_revoking_an_expired_refresh_token_answers_the_same_and_ends_nothing(
    client: AsyncClient, clean_engine: AsyncEngine
) -> None:
    await register(client)
    pair = await grant(client)
    await expire(clean_engine, "refresh_tokens", session_id(pair["access_token"]))

    assert_revoked_answer(await revoke(client, token=pair["refresh_token"]))

    await assert_access_works(client, pair["access_token"])


async def test_revoking_a_spent_refresh_token_answers_the_same_and_ends_nothing(
    client: AsyncClient,
) -> None:
    await register(client)
    login = await grant(client)
    rotated = await refreshed(client, login["refresh_token"])

    assert_revoked_answer(await revoke(client, token=login["refresh_token"]))

    await assert_session_works(client, rotated)


async def test_revoking_a_token_of_an_ended_session_answers_the_same(client: AsyncClient) -> None:
    await register(client)
    pair = await grant(client)
    assert_revoked_answer(await revoke(client, token=pair["refresh_token"]))

    assert_revoked_answer(await revoke(client, token=pair["refresh_token"]))
    assert_revoked_answer(await revoke(client, token=pair["access_token"]))


@pytest.mark.parametrize(
    "form",
    [{}, {"token": ""}, {"token_type_hint": "refresh_token"}],
    ids=["empty-form", "empty-token", "hint-only"],
)
async def test_revoke_without_a_token_is_invalid_request(
    client: AsyncClient, form: dict[str, str]
) -> None:
    response = await client.post(
        "/auth/revoke",
        data=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_oauth_error(response, "invalid_request")


async def test_revoke_refuses_a_json_body_and_ends_nothing(client: AsyncClient) -> None:
    await register(client)
    pair = await grant(client)

    response = await client.post("/auth/revoke", json={"token": pair["refresh_token"]})

    assert_oauth_error(response, "invalid_request")
    await assert_session_works(client, pair)


# POST /auth/logout, /auth/logout/all


async def test_logout_ends_only_the_callers_session(client: AsyncClient) -> None:
    await register(client)
    mine, other = await grant(client), await grant(client)

    response = await client.post("/auth/logout", headers=bearer(mine["access_token"]))

    assert response.status_code == 204, response.text
    assert response.content == b""
    await assert_session_ended(client, mine)
    await assert_session_works(client, other)


async def test_logout_ends_the_tokens_a_refresh_gave_too(client: AsyncClient) -> None:
    await register(client)
    login = await grant(client)
    rotated = await refreshed(client, login["refresh_token"])

    response = await client.post("/auth/logout", headers=bearer(login["access_token"]))

    assert response.status_code == 204, response.text
    await assert_session_ended(client, rotated)


async def test_logout_all_ends_every_session_of_the_caller_only(client: AsyncClient) -> None:
    await register(client, ANN)
    await register(client, BOB)
    mine = [await grant(client, ANN) for _ in range(3)]
    bobs = await grant(client, BOB)

    response = await client.post("/auth/logout/all", headers=bearer(mine[1]["access_token"]))

    assert response.status_code == 204, response.text
    assert response.content == b""
    for pair in mine:
        await assert_session_ended(client, pair)
    await assert_session_works(client, bobs)
    await grant(client, ANN)  # logging in again starts a new one


@pytest.mark.parametrize("path", ["/auth/logout", "/auth/logout/all"])
async def test_logout_needs_a_token(client: AsyncClient, path: str) -> None:
    response = await client.post(path)

    assert_unauthenticated(response)
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("path", ["/auth/logout", "/auth/logout/all"])
async def test_logout_with_an_ended_session_is_unauthenticated(
    client: AsyncClient, path: str
) -> None:
    await register(client)
    pair = await grant(client)
    assert (
        await client.post("/auth/logout", headers=bearer(pair["access_token"]))
    ).status_code == 204

    assert_unauthenticated(await client.post(path, headers=bearer(pair["access_token"])))


# GET /users/me/sessions


def moment(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, value
    return parsed


async def test_sessions_lists_live_sessions_newest_first(client: AsyncClient) -> None:
    await register(client)
    first = await grant(client, user_agent="first-browser/1.0")
    second = await grant(client, user_agent="second-browser/2.0")
    third = await grant(client, user_agent="third-browser/3.0")

    items = await sessions(client, second["access_token"])

    assert [item["id"] for item in items] == [
        session_id(third["access_token"]),
        session_id(second["access_token"]),
        session_id(first["access_token"]),
    ]
    assert [item["user_agent"] for item in items] == [
        "third-browser/3.0",
        "second-browser/2.0",
        "first-browser/1.0",
    ]
    assert [item["current"] for item in items] == [False, True, False]
    for item in items:
        assert set(item) == SESSION_FIELDS
        uuid.UUID(item["id"])
        created = moment(item["created_at"])
        assert moment(item["last_used_at"]) == created
        # The default absolute limit: 30 days after the login.
        assert moment(item["expires_at"]) == created + timedelta(days=30)
    assert moment(items[0]["created_at"]) > moment(items[1]["created_at"])
    assert moment(items[1]["created_at"]) > moment(items[2]["created_at"])


async def test_sessions_marks_the_callers_own_as_current(client: AsyncClient) -> None:
    await register(client)
    pairs = [await grant(client) for _ in range(3)]

    for pair in pairs:
        items = await sessions(client, pair["access_token"])
        assert [item["id"] for item in items if item["current"]] == [
            session_id(pair["access_token"])
        ]


async def test_sessions_keeps_at_most_256_characters_of_the_user_agent(
    client: AsyncClient,
) -> None:
    await register(client)
    pair = await grant(client, user_agent="x" * 300)

    (item,) = await sessions(client, pair["access_token"])

    assert item["user_agent"] == "x" * 256


async def test_sessions_shows_null_for_a_login_without_a_user_agent(client: AsyncClient) -> None:
    await register(client)
    request = client.build_request(
        "POST", "/auth/token", data={"username": ANN, "password": PASSWORD}
    )
    del request.headers["User-Agent"]
    response = await client.send(request)
    assert response.status_code == 200, response.text

    (item,) = await sessions(client, response.json()["access_token"])

    assert item["user_agent"] is None


async def test_sessions_last_used_at_moves_on_refresh(client: AsyncClient) -> None:
    await register(client)
    login = await grant(client)
    (before,) = await sessions(client, login["access_token"])

    rotated = await refreshed(client, login["refresh_token"])

    (after,) = await sessions(client, rotated["access_token"])
    assert after["id"] == before["id"]
    assert after["created_at"] == before["created_at"]
    assert after["expires_at"] == before["expires_at"]
    assert moment(after["last_used_at"]) > moment(before["last_used_at"])
    assert after["current"] is True


async def test_sessions_leaves_out_ended_sessions_and_other_users(client: AsyncClient) -> None:
    await register(client, ANN)
    await register(client, BOB)
    ended, kept = await grant(client, ANN), await grant(client, ANN)
    await grant(client, BOB)
    assert (
        await client.post("/auth/logout", headers=bearer(ended["access_token"]))
    ).status_code == 204

    items = await sessions(client, kept["access_token"])

    assert [item["id"] for item in items] == [session_id(kept["access_token"])]


async def test_sessions_needs_a_token(client: AsyncClient) -> None:
    assert_unauthenticated(await client.get("/users/me/sessions"))


# DELETE /users/me/sessions/{id}


async def end_my_session(client: AsyncClient, access_token: str, sid: str) -> Response:
    return await client.delete(f"/users/me/sessions/{sid}", headers=bearer(access_token))


async def test_ending_one_of_own_sessions_stops_it(client: AsyncClient) -> None:
    await register(client)
    lost_phone, laptop = await grant(client), await grant(client)

    response = await end_my_session(
        client, laptop["access_token"], session_id(lost_phone["access_token"])
    )

    assert response.status_code == 204, response.text
    assert response.content == b""
    await assert_session_ended(client, lost_phone)
    await assert_session_works(client, laptop)


async def test_ending_the_current_session_stops_it(client: AsyncClient) -> None:
    await register(client)
    pair = await grant(client)

    response = await end_my_session(client, pair["access_token"], session_id(pair["access_token"]))

    assert response.status_code == 204, response.text
    await assert_session_ended(client, pair)


async def test_ending_another_users_session_is_not_found_and_ends_nothing(
    client: AsyncClient,
) -> None:
    await register(client, ANN)
    await register(client, BOB)
    ann, bob = await grant(client, ANN), await grant(client, BOB)

    response = await end_my_session(client, ann["access_token"], session_id(bob["access_token"]))

    assert_detail(response, 404)
    await assert_session_works(client, bob)


async def test_ending_an_unknown_or_ended_session_is_not_found(client: AsyncClient) -> None:
    await register(client)
    ended, pair = await grant(client), await grant(client)
    assert (
        await client.post("/auth/logout", headers=bearer(ended["access_token"]))
    ).status_code == 204

    unknown = await end_my_session(client, pair["access_token"], UNKNOWN_ID)
    assert_detail(unknown, 404)
    ended_again = await end_my_session(
        client, pair["access_token"], session_id(ended["access_token"])
    )
    assert_detail(ended_again, 404)
    assert ended_again.json() == unknown.json()


async def test_ending_a_malformed_session_id_is_a_shape_error(client: AsyncClient) -> None:
    await register(client)
    pair = await grant(client)

    assert_shape_error(await end_my_session(client, pair["access_token"], "not-a-uuid"))


async def test_ending_a_session_needs_a_token(client: AsyncClient) -> None:
    await register(client)
    pair = await grant(client)

    response = await client.delete(f"/users/me/sessions/{session_id(pair['access_token'])}")

    assert_unauthenticated(response)
    await assert_session_works(client, pair)


# DELETE /users/{id}/sessions (admin)


async def test_an_admin_ends_every_session_of_a_user(app: FastAPI, client: AsyncClient) -> None:
    _, admin = await admin_token(app, client)
    ann = await register(client, ANN)
    await register(client, BOB)
    anns = [await grant(client, ANN), await grant(client, ANN)]
    bobs = await grant(client, BOB)

    response = await client.delete(f"/users/{ann['id']}/sessions", headers=bearer(admin))

    assert response.status_code == 204, response.text
    assert response.content == b""
    for pair in anns:
        await assert_session_ended(client, pair)
    await assert_session_works(client, bobs)
    await assert_access_works(client, admin)
    await grant(client, ANN)  # the account itself still works


async def test_an_admin_may_end_their_own_sessions(app: FastAPI, client: AsyncClient) -> None:
    admin_id, admin = await admin_token(app, client)

    response = await client.delete(f"/users/{admin_id}/sessions", headers=bearer(admin))

    assert response.status_code == 204, response.text
    await assert_access_refused(client, admin)


async def test_a_non_admin_cannot_end_another_users_sessions(client: AsyncClient) -> None:
    await register(client, ANN)
    bob = await register(client, BOB)
    ann, bobs = await grant(client, ANN), await grant(client, BOB)

    response = await client.delete(
        f"/users/{bob['id']}/sessions", headers=bearer(ann["access_token"])
    )

    assert_detail(response, 403)
    assert response.json() == {"detail": "Not enough permissions"}
    await assert_session_works(client, bobs)


async def test_ending_sessions_of_an_unknown_user_is_not_found(
    app: FastAPI, client: AsyncClient
) -> None:
    _, admin = await admin_token(app, client)

    assert_detail(await client.delete(f"/users/{UNKNOWN_ID}/sessions", headers=bearer(admin)), 404)


async def test_ending_sessions_of_a_malformed_user_id_is_a_shape_error(
    app: FastAPI, client: AsyncClient
) -> None:
    _, admin = await admin_token(app, client)

    assert_shape_error(await client.delete("/users/not-a-uuid/sessions", headers=bearer(admin)))


async def test_ending_a_users_sessions_needs_a_token(client: AsyncClient) -> None:
    ann = await register(client)
    pair = await grant(client)

    assert_unauthenticated(await client.delete(f"/users/{ann['id']}/sessions"))
    await assert_session_works(client, pair)


# Account changes end sessions


async def test_a_password_change_ends_every_session(client: AsyncClient) -> None:
    await register(client)
    first, second = await grant(client), await grant(client)

    response = await client.post(
        "/users/me/password",
        headers=bearer(first["access_token"]),
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )

    assert response.status_code == 204, response.text
    for pair in (first, second):
        await assert_session_ended(client, pair)
    await assert_session_works(client, await grant(client, password=NEW_PASSWORD))


async def test_a_wrong_current_password_ends_nothing(client: AsyncClient) -> None:
    await register(client)
    pair = await grant(client)

    response = await client.post(
        "/users/me/password",
        headers=bearer(pair["access_token"]),
        json={"current_password": "wrong-password-guess", "new_password": NEW_PASSWORD},
    )

    assert response.status_code == 400, response.text
    await assert_session_works(client, pair)


async def test_deactivation_ends_every_session_and_reactivation_does_not_restore_them(
    app: FastAPI, client: AsyncClient
) -> None:
    _, admin = await admin_token(app, client)
    ann = await register(client)
    first, second = await grant(client), await grant(client)

    off = await client.patch(
        f"/users/{ann['id']}", headers=bearer(admin), json={"is_active": False}
    )
    assert off.status_code == 200, off.text
    for pair in (first, second):
        await assert_session_ended(client, pair)

    on = await client.patch(f"/users/{ann['id']}", headers=bearer(admin), json={"is_active": True})
    assert on.status_code == 200, on.text
    for pair in (first, second):
        await assert_session_ended(client, pair)
    await assert_session_works(client, await grant(client))


async def test_demotion_ends_every_session(app: FastAPI, client: AsyncClient) -> None:
    _, admin = await admin_token(app, client)
    demoted_id, _ = await admin_token(app, client, "second@example.com")
    sessions_before = [await grant(client, "second@example.com") for _ in range(2)]

    response = await client.patch(
        f"/users/{demoted_id}", headers=bearer(admin), json={"role": "user"}
    )

    assert response.status_code == 200, response.text
    assert response.json()["role"] == "user"
    for pair in sessions_before:
        await assert_session_ended(client, pair)
    await assert_access_works(client, admin)
    await assert_session_works(client, await grant(client, "second@example.com"))


async def test_a_change_that_is_not_a_demotion_or_deactivation_ends_nothing(
    app: FastAPI, client: AsyncClient
) -> None:
    _, admin = await admin_token(app, client)
    ann = await register(client)
    pair = await grant(client)

    renamed = await client.patch(
        f"/users/{ann['id']}", headers=bearer(admin), json={"name": "Annie"}
    )

    assert renamed.status_code == 200, renamed.text
    await assert_session_works(client, pair)


async def test_deletion_by_an_admin_ends_every_session(app: FastAPI, client: AsyncClient) -> None:
    _, admin = await admin_token(app, client)
    ann = await register(client)
    pairs = [await grant(client), await grant(client)]

    response = await client.delete(f"/users/{ann['id']}", headers=bearer(admin))

    assert response.status_code == 204, response.text
    for pair in pairs:
        await assert_session_ended(client, pair)


async def test_deleting_oneself_ends_every_session(client: AsyncClient) -> None:
    await register(client)
    first, second = await grant(client), await grant(client)

    response = await client.delete("/users/me", headers=bearer(first["access_token"]))

    assert response.status_code == 204, response.text
    for pair in (first, second):
        await assert_session_ended(client, pair)


# The `sid` claim


def forged(user_id: str, **overrides: Any) -> str:
    """A token signed with the test secret, with the claims the service issues."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": user_id,
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        "type": "access",
        "ver": 0,
    }
    claims.update(overrides)
    return jwt.encode(
        {k: v for k, v in claims.items() if v is not None}, TEST_SECRET, algorithm="HS256"
    )


async def test_a_forged_token_with_a_live_sid_is_accepted(client: AsyncClient) -> None:
    # The control for the tests below: the forgery itself is right.
    ann = await register(client)
    pair = await grant(client)

    await assert_access_works(client, forged(ann["id"], sid=session_id(pair["access_token"])))


@pytest.mark.parametrize(
    "sid",
    [None, "", "not-a-uuid", UNKNOWN_ID, 42],
    ids=["absent", "empty", "malformed", "unknown", "number"],
)
async def test_a_token_without_a_live_session_is_refused(client: AsyncClient, sid: object) -> None:
    ann = await register(client)
    await grant(client)

    await assert_access_refused(client, forged(ann["id"], sid=sid))


async def test_a_token_naming_another_users_session_is_refused(client: AsyncClient) -> None:
    ann = await register(client, ANN)
    await register(client, BOB)
    bobs = await grant(client, BOB)

    await assert_access_refused(client, forged(ann["id"], sid=session_id(bobs["access_token"])))
    await assert_session_works(client, bobs)
