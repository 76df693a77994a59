"""GET /users/me is served by CurrentUserFastPath; it must answer exactly as the
FastAPI route it stands in for, which serves the same app with the fast path
taken out."""

from collections.abc import AsyncIterator
from typing import cast

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.responses import Response as Response_

from app.config import Settings
from app.core.dtos import Caller
from app.core.usecases.resolve_current_user import ResolveCurrentUser
from app.core.value_objects import ID
from app.infra.api import errors
from app.infra.api.current_user_fast_path import CurrentUserFastPath
from app.infra.api.services import services_of
from app.main import create_app
from tests.api.helpers import bearer, user_token
from tests.conftest import make_settings
from tests.integration.helpers import a_user

# Headers that differ between two responses for reasons other than the code.
VOLATILE = {"date", "server", "x-request-id"}


@pytest.fixture
async def route_only(settings: Settings, clean_engine: AsyncEngine) -> AsyncIterator[AsyncClient]:
    """The same app, with GET /users/me left to FastAPI's route."""
    app = create_app(settings)
    app.user_middleware = [m for m in app.user_middleware if not is_fast_path(m)]
    async with (
        LifespanManager(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http,
    ):
        yield http


def is_fast_path(middleware: Middleware) -> bool:
    return cast(object, middleware.cls) is CurrentUserFastPath


def same(fast: Response, route: Response) -> None:
    assert fast.status_code == route.status_code
    assert fast.content == route.content
    headers = {k: v for k, v in fast.headers.items() if k not in VOLATILE}
    assert headers == {k: v for k, v in route.headers.items() if k not in VOLATILE}


async def test_the_fast_path_is_installed(app: FastAPI) -> None:
    assert any(is_fast_path(m) for m in app.user_middleware)


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic YW5uOnB3",
        "Bearer not-a-jwt",
        "Bearer a.b.c",
        "bearer {token}",
        "BEARER   {token}  ",
        "Bearer {token}x",
        "Bearer {token}",
    ],
)
async def test_the_fast_path_answers_as_the_route(
    client: AsyncClient, route_only: AsyncClient, authorization: str | None
) -> None:
    _, token = await user_token(client)
    headers = {} if authorization is None else {"Authorization": authorization.format(token=token)}

    same(
        await client.get("/users/me", headers=headers),
        await route_only.get("/users/me", headers=headers),
    )


@pytest.mark.parametrize("verified", [False, True])
async def test_the_email_verified_flag_is_answered_alike(
    client: AsyncClient, route_only: AsyncClient, clean_engine: AsyncEngine, verified: bool
) -> None:
    _, token = await user_token(client)
    async with clean_engine.begin() as connection:
        await connection.execute(text("UPDATE users SET email_verified = :v"), {"v": verified})

    fast = await client.get("/users/me", headers=bearer(token))
    assert fast.status_code == 200, fast.text
    assert fast.json()["email_verified"] is verified
    same(fast, await route_only.get("/users/me", headers=bearer(token)))


async def test_a_deleted_user_is_refused_alike(
    client: AsyncClient, route_only: AsyncClient
) -> None:
    _, token = await user_token(client)
    assert (await client.delete("/users/me", headers=bearer(token))).status_code == 204

    same(
        await client.get("/users/me", headers=bearer(token)),
        await route_only.get("/users/me", headers=bearer(token)),
    )


async def test_an_ended_session_is_refused_alike(
    client: AsyncClient, route_only: AsyncClient
) -> None:
    _, token = await user_token(client)
    assert (await client.post("/auth/logout", headers=bearer(token))).status_code == 204

    fast = await client.get("/users/me", headers=bearer(token))
    assert fast.status_code == 401, fast.text
    same(fast, await route_only.get("/users/me", headers=bearer(token)))


async def test_other_methods_and_paths_are_left_to_fastapi(client: AsyncClient) -> None:
    _, token = await user_token(client)
    head = await client.head("/users/me", headers=bearer(token))
    assert head.status_code == 405  # FastAPI declares GET only
    assert (await client.get("/users/me/", headers=bearer(token))).status_code in (307, 404)


@pytest.mark.parametrize(
    "unreachable",
    [
        "postgresql+asyncpg://postgres@127.0.0.1:9/nowhere",  # nothing listens on port 9
        "sqlite+aiosqlite:////nonexistent-directory/users.db",
    ],
)
async def test_an_unreachable_database_is_503_with_retry_after(unreachable: str) -> None:
    app = create_app(make_settings(unreachable, DB_CONNECT_TIMEOUT_SECONDS=2))
    async with (
        LifespanManager(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http,
    ):
        # A well-signed token of a session the database cannot be asked about.
        token = services_of(app).tokens.issue(a_user(), ID.new()).token
        response = await http.get("/users/me", headers=bearer(token))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json() == {"detail": "Database unavailable; try again later"}


class Teapot(Exception):
    pass


async def on_teapot(_: Request, exc: Exception) -> Response_:
    return JSONResponse({"detail": "short and stout"}, status_code=418)


async def test_a_handler_added_to_the_list_applies_to_routes_and_the_fast_path(
    settings: Settings, clean_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(errors, "HANDLERS", [*errors.HANDLERS, (Teapot, on_teapot)])

    async def brew(self: ResolveCurrentUser, token: str | None) -> Caller:
        raise Teapot()

    monkeypatch.setattr(ResolveCurrentUser, "execute", brew)
    app = create_app(settings)
    async with (
        LifespanManager(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http,
    ):
        fast = await http.get("/users/me")  # the fast path
        route = await http.patch("/users/me", json={})  # a route, through get_current_user

    for response in (fast, route):
        assert response.status_code == 418, response.text
        assert response.json() == {"detail": "short and stout"}
