"""Request ids, response hygiene headers, audit events, log formats, and the
promise that no password, hash or token ever reaches the logs."""

import json
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import NamedTuple
from urllib.parse import quote, urlencode

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.logger import JsonFormatter, ReadableFormatter, configure_logging
from app.main import create_app
from tests.api.helpers import (
    PASSWORD,
    admin_token,
    bearer,
    dispatch_only_when_told,
    link_token,
    login,
    mailed,
    register,
    token_response,
    user_token,
)
from tests.conftest import Logged, make_settings

NEW_PASSWORD = "another-horse-battery"


def audit_events(caplog: pytest.LogCaptureFixture) -> list[tuple[str, dict[str, str]]]:
    return [
        (r.getMessage(), {k: v for k, v in r.__dict__.items() if k in ("user_id", "by", "role")})
        for r in caplog.records
        if r.name == "app.audit"
    ]


# Request ids


async def test_every_response_carries_a_fresh_request_id(client: AsyncClient) -> None:
    first, second = await client.get("/health"), await client.get("/users/me")
    ids = {first.headers["x-request-id"], second.headers["x-request-id"]}
    assert len(ids) == 2
    assert all(len(i) == 32 for i in ids)


async def test_request_ids_are_random_not_a_prefix_and_a_counter(client: AsyncClient) -> None:
    ids = [(await client.get("/health")).headers["x-request-id"] for _ in range(100)]
    assert len({i[:16] for i in ids}) == len({i[16:] for i in ids}) == len(ids)
    assert all(int(i, 16) >= 0 for i in ids)  # hex, as before


async def test_a_plain_incoming_request_id_is_kept(client: AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Request-ID": "req-42.a:b_c"})
    assert response.headers["x-request-id"] == "req-42.a:b_c"


@pytest.mark.parametrize("forged", ["two words", "x" * 129, "line\nbreak", "<script>", ""])
async def test_an_odd_incoming_request_id_is_replaced(client: AsyncClient, forged: str) -> None:
    response = await client.get("/health", headers={"X-Request-ID": forged})
    assert response.headers["x-request-id"] != forged
    assert len(response.headers["x-request-id"]) == 32


async def test_log_records_of_a_request_carry_its_id(
    client: AsyncClient, caplog: pytest.LogCaptureFixture, logged: Logged
) -> None:
    with caplog.at_level(logging.INFO):
        response = await client.get("/users/me", headers={"X-Request-ID": "trace-me"})
    [access] = logged.access()
    assert response.headers["x-request-id"] == "trace-me"
    json_line = json.loads(JsonFormatter().format_access(access))
    assert {k: json_line[k] for k in ("request_id", "method", "path", "status")} == {
        "request_id": "trace-me",
        "method": "GET",
        "path": "/users/me",
        "status": 401,
    }
    assert json_line["message"] == "GET /users/me 401"
    assert (json_line["level"], json_line["logger"]) == ("INFO", "app.access")
    assert isinstance(json_line["duration_ms"], float)
    readable = ReadableFormatter().format_access(access)
    assert " INFO app.access: GET /users/me 401 request_id=trace-me method=GET " in readable


async def test_no_access_line_above_info(client: AsyncClient, logged: Logged) -> None:
    assert (await client.get("/health")).status_code == 200  # LOG_LEVEL=WARNING
    assert logged.access() == []


async def test_a_path_cannot_forge_a_log_line(
    client: AsyncClient, caplog: pytest.LogCaptureFixture, logged: Logged
) -> None:
    forged = "/x\n2026-01-01T00:00:00+0000 INFO app.audit: user.deleted\r\x1b[2K\u2028\x85y"
    with caplog.at_level(logging.INFO, logger="app.access"):
        assert (await client.get(quote(forged))).status_code == 404
    [access] = logged.access()
    readable = ReadableFormatter().format_access(access)
    assert readable.splitlines() == [readable]  # splitlines breaks at \x85 and \u2028 too
    assert readable.isprintable()
    escaped = "/x\\n2026-01-01T00:00:00+0000 INFO app.audit: user.deleted\\r\\x1b[2K\\u2028\\x85y"
    assert f"GET {escaped} 404 " in readable
    assert f"path={escaped} " in readable
    json_line = JsonFormatter().format_access(access)
    assert json_line.splitlines() == [json_line]
    assert json_line.isascii()
    assert json.loads(json_line)["path"] == forged


# Request framing


async def test_both_content_length_and_transfer_encoding_is_refused_and_closes(
    client: AsyncClient, caplog: pytest.LogCaptureFixture, logged: Logged
) -> None:
    body = json.dumps({"name": "Ann", "email": "ann@example.com", "password": PASSWORD}).encode()
    framed = {"Content-Type": "application/json"}
    ambiguous = framed | {"Content-Length": str(len(body)), "Transfer-Encoding": "chunked"}
    with caplog.at_level(logging.INFO, logger="app.access"):
        response = await client.post("/users", content=body, headers=ambiguous)
    assert response.status_code == 400
    assert response.json() == {"detail": "Request has both Content-Length and Transfer-Encoding"}
    assert response.headers["connection"] == "close"
    assert response.headers["x-request-id"]
    assert [status for _, _, _, _, status, _ in logged.access()] == [400]
    # The request was not served: the same registration, framed once, is new.
    assert (await client.post("/users", content=body, headers=framed)).status_code == 201
    # At the token endpoint, in its RFC 6749 shape; the right password gets no token.
    form = urlencode({"username": "ann@example.com", "password": PASSWORD}).encode()
    ambiguous = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Length": str(len(form)),
        "Transfer-Encoding": "chunked",
    }
    token = await client.post("/auth/token", content=form, headers=ambiguous)
    assert token.status_code == 400
    assert token.json()["error"] == "invalid_request"
    assert token.headers["connection"] == "close"


# Response hygiene


async def test_every_response_says_nosniff(client: AsyncClient) -> None:
    for response in (
        await client.get("/health"),
        await client.get("/users/me"),
        await client.post("/users", json={}),
        await client.post("/auth/token", data={}),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_authenticated_responses_are_not_stored(client: AsyncClient) -> None:
    user, token = await user_token(client)
    for response in (
        await client.get("/users/me", headers=bearer(token)),
        await client.get(f"/users/{user['id']}", headers=bearer(token)),
        await client.patch("/users/me", json={}, headers=bearer(token)),
        await client.get("/users/me", headers=bearer("not-a-token")),
    ):
        assert response.headers["cache-control"] == "no-store"
    token_answer = await token_response(client, "ann@example.com")
    assert token_answer.headers["cache-control"] == "no-store"
    assert "cache-control" not in (await client.get("/health")).headers


@pytest.fixture
async def docs_off(settings: Settings, clean_engine: AsyncEngine) -> AsyncIterator[AsyncClient]:
    app = create_app(settings.model_copy(update={"DOCS_ENABLED": False}))
    async with (
        LifespanManager(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http,
    ):
        yield http


async def test_openapi_and_docs_can_be_switched_off(docs_off: AsyncClient) -> None:
    for path in (
        "/docs",
        "/redoc",
        "/openapi.json",
        "/docs/oauth2-redirect",
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/redoc.standalone.js",
    ):
        assert (await docs_off.get(path)).status_code == 404, path
    assert (await docs_off.get("/health")).status_code == 200


# Audit events


async def test_account_events_are_audited_with_ids_only(
    app: FastAPI, client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    admin_id, admin = await admin_token(app, client)
    with caplog.at_level(logging.INFO, logger="app.audit"):
        user, token = await user_token(client)
        uid = user["id"]
        await token_response(client, "ann@example.com", "wrong-password-1")
        await token_response(client, "nobody@example.com", "wrong-password-1")
        await client.post(
            "/users/me/password",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers=bearer(await login(client)),
        )
        await client.patch(f"/users/{uid}", json={"role": "admin"}, headers=bearer(admin))
        await client.patch(f"/users/{uid}", json={"is_active": False}, headers=bearer(admin))
        await client.patch(f"/users/{uid}", json={"is_active": True}, headers=bearer(admin))
        await client.delete(f"/users/{uid}", headers=bearer(admin))

    assert audit_events(caplog) == [
        ("user.registered", {"user_id": uid, "role": "user"}),
        ("login.succeeded", {"user_id": uid}),
        ("login.failed", {"user_id": uid}),
        ("login.failed", {"user_id": "unknown"}),
        ("login.succeeded", {"user_id": uid}),
        ("user.password_changed", {"user_id": uid}),
        ("user.role_changed", {"user_id": uid, "by": admin_id, "role": "admin"}),
        ("user.deactivated", {"user_id": uid, "by": admin_id}),
        ("user.activated", {"user_id": uid, "by": admin_id}),
        ("user.deleted", {"user_id": uid, "by": admin_id}),
    ]
    assert token  # the first login's token was issued


async def test_recovery_events_are_audited_with_ids_only(
    database_url: str,
    clean_engine: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dispatch_only_when_told(monkeypatch)
    app = create_app(make_settings(database_url, REQUIRE_VERIFIED_EMAIL=True))
    async with (
        LifespanManager(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http,
    ):
        with caplog.at_level(logging.INFO, logger="app.audit"):
            uid = (await register(http))["id"]
            [registration] = await mailed(app)
            await token_response(http, "ann@example.com")  # unverified
            verification = link_token(registration, "verify-email")
            assert (
                await http.post("/auth/verify-email", json={"token": verification})
            ).status_code == 204
            for email in ("ann@example.com", "nobody@example.com"):
                await http.post("/auth/password/forgot", json={"email": email})
            [reset_mail] = (await mailed(app))[1:]
            reset = {
                "token": link_token(reset_mail, "reset-password"),
                "new_password": NEW_PASSWORD,
            }
            assert (await http.post("/auth/password/reset", json=reset)).status_code == 204

    assert audit_events(caplog) == [
        ("user.registered", {"user_id": uid, "role": "user"}),
        ("login.refused_unverified", {"user_id": uid}),
        ("user.email_verified", {"user_id": uid}),
        ("user.password_reset_mail_queued", {"user_id": uid}),
        ("user.password_reset", {"user_id": uid}),
    ]


async def test_a_refused_locked_login_is_audited(
    database_url: str, clean_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(make_settings(database_url, LOGIN_MAX_FAILURES=1))
    async with (
        LifespanManager(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http,
    ):
        await token_response(http, "ann@example.com", "wrong-password-1")
        with caplog.at_level(logging.INFO, logger="app.audit"):
            assert (await token_response(http, "ann@example.com")).status_code == 429
    assert [event for event, _ in audit_events(caplog)] == ["login.refused_locked"]


# No secrets in the logs, whatever the level


async def test_no_password_hash_or_token_reaches_the_logs(
    database_url: str,
    clean_engine: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
    logged: Logged,
) -> None:
    app = create_app(make_settings(database_url, LOG_LEVEL="DEBUG"))
    with caplog.at_level(logging.DEBUG):
        async with (
            LifespanManager(app),
            AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http,
        ):
            _, admin = await admin_token(app, http)
            user, token = await user_token(http)
            tokens = [admin, token, await login(http)]
            await token_response(http, "ann@example.com", "a-wrong-password")
            await http.post("/users", json={"name": "X", "email": "x@example.com", "password": "x"})
            await http.post(
                "/users/me/password",
                json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
                headers=bearer(token),
            )
            tokens.append(await login(http, password=NEW_PASSWORD))
            await http.get("/users/me", headers=bearer(tokens[-1]))
            await http.get("/users/me", headers=bearer(token))  # revoked
            await http.get(f"/users/{user['id']}", headers=bearer(admin))
            async with clean_engine.connect() as connection:
                hashes = (
                    await connection.execute(text("SELECT hashed_password FROM users"))
                ).scalars()
                secrets = [PASSWORD, NEW_PASSWORD, "a-wrong-password", *hashes, *tokens]

    assert_not_logged(caplog, logged, secrets)


async def test_no_refresh_token_access_token_or_password_of_a_session_reaches_the_logs(
    database_url: str,
    clean_engine: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
    logged: Logged,
) -> None:
    app = create_app(make_settings(database_url, LOG_LEVEL="DEBUG"))
    with caplog.at_level(logging.DEBUG):
        async with (
            LifespanManager(app),
            AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http,
        ):
            _, admin = await admin_token(app, http)
            user, _ = await user_token(http)
            first = await _pair(token_response(http, "ann@example.com"))
            rotated = await _pair(_refresh(http, first.refresh))
            pairs = [first, rotated]
            # The grace presentation, then reuse (audited, the session ends).
            pairs.append(await _pair(_refresh(http, first.refresh)))
            assert (await _refresh(http, first.refresh)).status_code == 400
            assert (await _refresh(http, "not-a-refresh-token")).status_code == 400

            current = await _pair(token_response(http, "ann@example.com"))
            other = await _pair(token_response(http, "ann@example.com"))
            pairs += [current, other]
            listed = await http.get("/users/me/sessions", headers=bearer(current.access))
            assert listed.status_code == 200, listed.text
            other_id = next(s["id"] for s in listed.json()["items"] if not s["current"])
            ended = await http.delete(
                f"/users/me/sessions/{other_id}", headers=bearer(current.access)
            )
            assert ended.status_code == 204, ended.text

            for token in (current.refresh, current.access, "not-a-token"):
                revoked = await http.post("/auth/revoke", data={"token": token})
                assert revoked.status_code == 200, revoked.text
            for path in ("/auth/logout", "/auth/logout/all"):
                pair = await _pair(token_response(http, "ann@example.com"))
                pairs.append(pair)
                assert (await http.post(path, headers=bearer(pair.access))).status_code == 204
            pairs.append(await _pair(token_response(http, "ann@example.com")))
            by_admin = await http.delete(f"/users/{user['id']}/sessions", headers=bearer(admin))
            assert by_admin.status_code == 204, by_admin.text
            await http.get("/users/me", headers=bearer(pairs[-1].access))  # its session ended

            async with clean_engine.connect() as connection:
                digests = (
                    await connection.execute(text("SELECT token_hash FROM refresh_tokens"))
                ).scalars()
                secrets = [
                    PASSWORD,
                    admin,
                    *(p.access for p in pairs),
                    *(p.refresh for p in pairs),
                    *digests,
                ]

    audited = [event for event, _ in audit_events(caplog)]
    assert "session.refresh_token_reused" in audited, audited  # the flows ran
    assert_not_logged(caplog, logged, secrets)


async def test_no_reset_or_verification_token_or_password_of_a_recovery_reaches_the_logs(
    database_url: str,
    clean_engine: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    logged: Logged,
) -> None:
    dispatch_only_when_told(monkeypatch)  # mail goes out at `mailed`, and only then
    app = create_app(
        make_settings(database_url, LOG_LEVEL="DEBUG", RECOVERY_EMAIL_COOLDOWN_SECONDS=0)
    )
    refused_password = "never-set-password-1"
    with caplog.at_level(logging.DEBUG):
        async with (
            LifespanManager(app),
            AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http,
        ):
            _, admin = await admin_token(app, http)
            _, access = await user_token(http)
            [registration] = await mailed(app)
            verification = link_token(registration, "verify-email")
            for token in (verification, verification, "not-a-verification-token"):
                await http.post("/auth/verify-email", json={"token": token})
            for email in ("ann@example.com", "nobody@example.com", "not-an-email"):
                await http.post("/auth/verify-email/request", json={"email": email})
                await http.post("/auth/password/forgot", json={"email": email})
            [reset_mail] = [m for m in await mailed(app) if "/reset-password#" in m.text]
            reset = link_token(reset_mail, "reset-password")
            # A token in the query string is refused (422), and not logged either.
            # (The test's own client, httpx, logs the URL it requests: not the service.
            # Not caplog.at_level, which would raise its handler's level too.)
            client_log = logging.getLogger("httpx")
            client_log.disabled = True
            try:
                query = await http.post(
                    "/auth/password/reset",
                    params={"token": reset, "new_password": refused_password},
                )
            finally:
                client_log.disabled = False
            assert query.status_code == 422, query.text
            for token, password in (
                ("not-a-reset-token", refused_password),
                (reset, "short"),
                (reset, NEW_PASSWORD),
                (reset, refused_password),  # spent
            ):
                await http.post(
                    "/auth/password/reset", json={"token": token, "new_password": password}
                )
            tokens = [admin, access, await login(http, password=NEW_PASSWORD)]
            changed = await http.patch(
                "/users/me", json={"email": "ann.new@example.com"}, headers=bearer(tokens[-1])
            )
            assert changed.status_code == 200, changed.text
            # A round's mails come in no set order: picked by recipient.
            [renewal] = [m for m in await mailed(app) if m.to == "ann.new@example.com"]
            renewed = link_token(renewal, "verify-email")
            assert (
                await http.post("/auth/verify-email", json={"token": renewed})
            ).status_code == 204
            async with clean_engine.connect() as connection:
                digests = (
                    await connection.execute(text("SELECT token_hash FROM one_time_tokens"))
                ).scalars()
                hashes = (
                    await connection.execute(text("SELECT hashed_password FROM users"))
                ).scalars()
                secrets = [
                    PASSWORD,
                    NEW_PASSWORD,
                    refused_password,
                    verification,
                    reset,
                    renewed,
                    *tokens,
                    *digests,
                    *hashes,
                ]

    audited = [event for event, _ in audit_events(caplog)]
    for event in ("user.email_verified", "user.password_reset"):  # the flows ran
        assert event in audited, audited
    assert len({verification, reset, renewed}) == 3
    assert_not_logged(caplog, logged, secrets)


class _Pair(NamedTuple):
    access: str
    refresh: str


async def _pair(answer: Awaitable[Response]) -> _Pair:
    response = await answer
    assert response.status_code == 200, response.text
    return _Pair(response.json()["access_token"], response.json()["refresh_token"])


async def _refresh(http: AsyncClient, refresh_token: str) -> Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return await http.post("/auth/token", data=form)


def assert_not_logged(
    caplog: pytest.LogCaptureFixture, written: Logged, secrets: list[str]
) -> None:
    """Checks what was captured, each record as both formatters write it, and
    what reached the log writer (access lines in both formats)."""
    logged = caplog.text + "\n".join(
        formatter.format(record)
        for record in caplog.records
        for formatter in (JsonFormatter(), ReadableFormatter())
    )
    logged += written.text()
    assert caplog.records, "the flow logged nothing: the test would prove nothing"
    assert written.access(), "no access line was written: the test would prove nothing"
    for secret in secrets:
        assert secret not in logged
        assert secret.split("$")[-1] not in logged  # not even a hash's digest part


def test_json_lines_in_production_and_readable_lines_elsewhere() -> None:
    try:
        configure_logging("INFO", json_lines=True)
        assert isinstance(_our_handler().formatter, JsonFormatter)
        configure_logging("INFO", json_lines=False)
        assert isinstance(_our_handler().formatter, ReadableFormatter)
    finally:
        configure_logging("WARNING")


def _our_handler() -> logging.Handler:
    import app.logger

    assert app.logger._handler is not None
    return app.logger._handler


def test_a_json_line_holds_the_event_fields() -> None:
    record = logging.LogRecord("app.audit", logging.INFO, __file__, 1, "user.deleted", None, None)
    record.__dict__.update(event="user.deleted", user_id="u1", by="a1", request_id="r1")
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "user.deleted"
    assert line["level"] == "INFO"
    assert line["logger"] == "app.audit"
    assert (line["user_id"], line["by"], line["request_id"]) == ("u1", "a1", "r1")
    assert line["time"].endswith("+00:00")
