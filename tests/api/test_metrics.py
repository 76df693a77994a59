"""GET /metrics in one process: off by default, guarded by METRICS_TOKEN, and
counting exactly what was served, by bounded labels. (Several workers:
tests/multiprocess/test_metrics_two_workers.py.)"""

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.exceptions import HashingBusy
from app.infra.api.services import services_of
from app.main import create_app
from tests.api.helpers import bearer, dispatch_only_when_told, register, token_response, user_token
from tests.conftest import make_settings

METRICS_TOKEN = "a-metrics-token-0123456789"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(exposition: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests(samples: Samples, route: str, method: str, status: str) -> float:
    return value(
        samples, "http_request_duration_seconds_count", route=route, method=method, status=status
    )


@asynccontextmanager
async def serving(database_url: str, **settings: Any) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    app = create_app(make_settings(database_url, METRICS_ENABLED=True, **settings))
    async with (
        LifespanManager(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http,
    ):
        yield app, http


async def scrape(http: AsyncClient, **headers: str) -> Samples:
    response = await http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.text)


async def test_metrics_are_off_unless_enabled(client: AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 404
    assert "/metrics" not in (await client.get("/openapi.json")).text


async def test_metrics_are_not_in_the_api_schema(
    database_url: str, clean_engine: AsyncEngine
) -> None:
    async with serving(database_url) as (_, http):
        assert "/metrics" not in (await http.get("/openapi.json")).json()["paths"]


async def test_a_metrics_token_is_required_when_set(
    database_url: str, clean_engine: AsyncEngine
) -> None:
    async with serving(database_url, METRICS_TOKEN=METRICS_TOKEN) as (_, http):
        for headers in ({}, bearer("wrong-token-0123456789"), {"Authorization": METRICS_TOKEN}):
            refused = await http.get("/metrics", headers=headers)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == "Bearer"
            assert refused.json() == {"detail": "Not authenticated"}
        await scrape(http, **bearer(METRICS_TOKEN))


async def test_requests_are_counted_by_route_template_method_and_status_class(
    database_url: str, clean_engine: AsyncEngine
) -> None:
    async with serving(database_url) as (_, http):
        user, token = await user_token(http)
        before = await scrape(http)
        for _ in range(3):
            assert (await http.get("/users/me", headers=bearer(token))).status_code == 200
        assert (await http.get("/users/me")).status_code == 401
        assert (await http.get(f"/users/{user['id']}", headers=bearer(token))).status_code == 200
        assert (await http.get("/no/such/path/123")).status_code == 404
        assert (await http.request("BREW", "/users/me")).status_code in (401, 405)
        after = await scrape(http)

    def moved(route: str, method: str, status: str) -> float:
        return requests(after, route, method, status) - requests(before, route, method, status)

    assert moved("/users/me", "GET", "2xx") == 3
    assert moved("/users/me", "GET", "4xx") == 1
    assert moved("/users/{user_id}", "GET", "2xx") == 1
    assert moved("unmatched", "GET", "4xx") == 1
    assert moved("/metrics", "GET", "2xx") == 1  # the first scrape
    assert sum(moved("/users/me", m, "4xx") for m in ("OTHER", "BREW")) == 1
    routes = {dict(labels)["route"] for name, labels in after if "route" in dict(labels)}
    assert not any(user["id"] in route or "123" in route for route in routes), routes
    methods = {dict(labels)["method"] for name, labels in after if "method" in dict(labels)}
    assert "BREW" not in methods


async def test_logins_are_counted_by_outcome(database_url: str, clean_engine: AsyncEngine) -> None:
    async with serving(database_url, LOGIN_MAX_FAILURES=2) as (app, http):
        await register(http)
        await register(http, email="bob@example.com")
        assert (await token_response(http, "ann@example.com")).status_code == 200
        for _ in range(2):
            wrong = await token_response(http, "bob@example.com", "wrong-pass-1")
            assert wrong.status_code == 400
        assert (await token_response(http, "bob@example.com")).status_code == 429
        services = services_of(app)
        app.state.services = dataclasses.replace(services, hasher=_BusyHasher())
        assert (await token_response(http, "ann@example.com")).status_code == 503
        app.state.services = services
        samples = await scrape(http)

    def logins(outcome: str) -> float:
        return value(samples, "auth_logins_total", outcome=outcome)

    assert [logins(o) for o in ("success", "invalid", "locked", "shed")] == [1, 2, 1, 1]
    assert logins("unverified") == logins("error") == 0
    assert value(samples, "password_hash_queue_wait_seconds_count") == 5  # 2 hashes, 3 checks


async def test_an_unverified_login_is_counted_apart(
    database_url: str, clean_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    dispatch_only_when_told(monkeypatch)  # the verification mail stays in the outbox
    async with serving(database_url, REQUIRE_VERIFIED_EMAIL=True) as (_, http):
        await register(http)
        assert (await token_response(http, "ann@example.com")).status_code == 400
        samples = await scrape(http)
    assert value(samples, "auth_logins_total", outcome="unverified") == 1
    assert value(samples, "auth_logins_total", outcome="invalid") == 0
    assert value(samples, "outbox_messages", state="pending") == 1  # the verification mail


async def test_refreshes_are_counted_by_outcome_and_reuse_apart(
    database_url: str, clean_engine: AsyncEngine
) -> None:
    async with serving(database_url, REFRESH_TOKEN_REUSE_INTERVAL_SECONDS=0) as (_, http):
        await register(http)
        first = (await token_response(http, "ann@example.com")).json()["refresh_token"]

        async def refresh(token: str) -> int:
            form = {"grant_type": "refresh_token", "refresh_token": token}
            return (await http.post("/auth/token", data=form)).status_code

        assert await refresh(first) == 200
        assert await refresh(first) == 400  # reused: the session ends
        assert await refresh("not-a-refresh-token") == 400
        samples = await scrape(http)

    def refreshes(outcome: str) -> float:
        return value(samples, "auth_refreshes_total", outcome=outcome)

    assert [refreshes(o) for o in ("success", "reused", "invalid", "error")] == [1, 1, 1, 0]


async def test_gauges_describe_the_process(database_url: str, clean_engine: AsyncEngine) -> None:
    async with serving(database_url) as (_, http):
        samples = await scrape(http)
    assert value(samples, "password_hash_queue_depth") == 0
    assert ("db_pool_connections_in_use", frozenset()) in samples
    assert value(samples, "log_lines_dropped_total") == 0
    assert value(samples, "outbox_messages", state="failed") == 0


class _BusyHasher:
    """Every hashing slot taken: each hash or check is shed."""

    waiting = 0

    def __getattr__(self, name: str) -> Callable[..., Any]:
        async def busy(*args: object) -> None:
            raise HashingBusy()

        return busy
