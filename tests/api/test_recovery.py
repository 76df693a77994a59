"""Password recovery and email verification (API.md, v2), through the API on
both backends: forgot and verify-request, reset, verify, the mail they cause,
the per-client limit, the per-address cooldown and REQUIRE_VERIFIED_EMAIL.

Mail is read from the app's MemoryEmailSender after one dispatcher round
(`Inbox.new`); the dispatcher's background loop idles in these tests, so a
round happens exactly when a test asks for it.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.core.dtos import EmailMessage
from app.main import create_app
from tests.api.helpers import (
    PASSWORD,
    admin_token,
    assert_detail,
    assert_invalid_grant,
    assert_shape_error,
    bearer,
    dispatch_only_when_told,
    link_token,
    login,
    mailed,
    register,
    token_response,
    user_token,
)
from tests.conftest import make_settings

FRONTEND_URL = "https://app.example"
FORGOT = "/auth/password/forgot"
RESET = "/auth/password/reset"
VERIFY_REQUEST = "/auth/verify-email/request"
VERIFY = "/auth/verify-email"
RESET_SENT = "If an account exists for this email, a reset link has been sent"
VERIFICATION_SENT = "If an account exists for this email, a verification link has been sent"
INVALID_TOKEN = {"detail": "Invalid or expired token"}
NEW_PASSWORD = "new-staple-lantern-9"
ANN = "ann@example.com"
# Headers that differ between two answers for reasons other than the request.
VOLATILE = {"date", "x-request-id"}


@pytest.fixture(autouse=True)
def _dispatch_only_when_told(monkeypatch: pytest.MonkeyPatch) -> None:
    dispatch_only_when_told(monkeypatch)


@pytest.fixture
def settings(database_url: str) -> Settings:
    """conftest's `app` and `client` run with these: links under FRONTEND_URL."""
    return make_settings(database_url, FRONTEND_URL=FRONTEND_URL)


@asynccontextmanager
async def serve(
    database_url: str, **overrides: object
) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    """An app with settings of its own (over a database the test has emptied)."""
    app = create_app(make_settings(database_url, FRONTEND_URL=FRONTEND_URL, **overrides))
    async with (
        LifespanManager(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http,
    ):
        yield app, http


class Inbox:
    """The mail the app sent, a batch at a time."""

    def __init__(self, app: FastAPI) -> None:
        self._app, self._seen = app, 0

    async def new(self) -> list[EmailMessage]:
        """What was sent since the last call, after a dispatcher round."""
        sent = await mailed(self._app)
        fresh, self._seen = sent[self._seen :], len(sent)
        return fresh

    async def token(self, page: str, to: str = ANN) -> str:
        """The token of the one new mail, which links to `page`, sent to `to`."""
        [message] = await self.new()
        assert message.to == to
        return link_token(message, page)


async def forgot(http: AsyncClient, email: str = ANN) -> Response:
    return await http.post(FORGOT, json={"email": email})


async def reset(http: AsyncClient, token: str, new_password: str = NEW_PASSWORD) -> Response:
    return await http.post(RESET, json={"token": token, "new_password": new_password})


async def verify(http: AsyncClient, token: str) -> Response:
    return await http.post(VERIFY, json={"token": token})


async def reset_token(http: AsyncClient, inbox: Inbox, email: str = ANN) -> str:
    """Asks for a reset link and returns its token."""
    assert (await forgot(http, email)).status_code == 202
    return await inbox.token("reset-password", email)


async def me(http: AsyncClient, access_token: str) -> dict[str, Any]:
    response = await http.get("/users/me", headers=bearer(access_token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_invalid_token(response: Response) -> None:
    assert response.status_code == 400, response.text
    assert response.json() == INVALID_TOKEN


def stable_headers(response: Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in VOLATILE}


async def count(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as connection:
        rows = await connection.execute(text(f"SELECT count(*) FROM {table}"))  # noqa: S608
        return int(rows.scalar_one())


# POST /auth/password/forgot and /auth/verify-email/request

MAIL_REQUESTS = [
    pytest.param(FORGOT, RESET_SENT, "reset-password", id="forgot"),
    pytest.param(VERIFY_REQUEST, VERIFICATION_SENT, "verify-email", id="verify-request"),
]


@pytest.mark.parametrize(("path", "detail", "page"), MAIL_REQUESTS)
async def test_a_mail_request_answers_alike_for_known_unknown_and_inactive_addresses(
    app: FastAPI, client: AsyncClient, path: str, detail: str, page: str
) -> None:
    _, admin = await admin_token(app, client)
    await register(client, ANN)
    bob = await register(client, "bob@example.com")
    off = await client.patch(
        f"/users/{bob['id']}", json={"is_active": False}, headers=bearer(admin)
    )
    assert off.status_code == 200, off.text
    inbox = Inbox(app)
    assert len(await inbox.new()) == 2  # the registrations' verification mails

    answers = [
        await client.post(path, json={"email": email})
        for email in (ANN, "nobody@example.com", "bob@example.com")
    ]

    for answer in answers:
        assert answer.status_code == 202, answer.text
        assert answer.json() == {"detail": detail}
        assert stable_headers(answer) == stable_headers(answers[0])
    # One mail, to the active account (the registration mail starts no cooldown).
    await inbox.token(page)


@pytest.mark.parametrize("path", [FORGOT, VERIFY_REQUEST])
@pytest.mark.parametrize(
    ("body", "status_code"),
    [
        ({"email": "not-an-email"}, 400),
        ({"email": ""}, 400),
        ({"email": "ann@example"}, 400),
        ({"email": "a" * 250 + "@example.com"}, 400),
        ({}, 422),
        ({"email": None}, 422),
        ({"email": ["ann@example.com"]}, 422),
        ({"email": "ann@example.com", "token": "x"}, 422),
    ],
)
async def test_a_malformed_email_is_refused_and_records_nothing(
    client: AsyncClient,
    clean_engine: AsyncEngine,
    path: str,
    body: dict[str, object],
    status_code: int,
) -> None:
    response = await client.post(path, json=body)

    if status_code == 400:
        assert_detail(response, 400)
        assert response.json() == {"detail": "Invalid email address"}
    else:
        assert_shape_error(response)
    assert await count(clean_engine, "mail_requests") == 0


async def test_the_four_endpoints_share_one_limit_per_client(
    database_url: str, clean_engine: AsyncEngine
) -> None:
    async with serve(database_url, RECOVERY_REQUESTS_PER_HOUR=3) as (app, http):
        counted = [
            await forgot(http),
            await http.post(VERIFY_REQUEST, json={"email": ANN}),
            await reset(http, "a-token-never-issued"),
        ]
        assert [r.status_code for r in counted] == [202, 202, 400]

        limited = [
            await verify(http, "a-token-never-issued"),  # the fourth request
            await forgot(http),
            await http.post(VERIFY_REQUEST, json={"email": ANN}),
            await reset(http, "a-token-never-issued"),
            # Headers a client sets do not make it another client.
            await http.post(
                FORGOT,
                json={"email": ANN},
                headers={
                    "X-Forwarded-For": "203.0.113.9",
                    "X-Real-IP": "203.0.113.9",
                    "Forwarded": "for=203.0.113.9",
                },
            ),
        ]
        for response in limited:
            assert_detail(response, 429)
            retry_after = response.headers["Retry-After"]
            assert retry_after.isdigit(), retry_after
            assert 1 <= int(retry_after) <= 3600
        # The refused requests recorded nothing: two requests wait, as before.
        assert await count(clean_engine, "mail_requests") == 2

        # Another client address is counted on its own.
        other = ASGITransport(app=app, client=("198.51.100.7", 40000))
        async with AsyncClient(transport=other, base_url="http://test") as elsewhere:
            assert (await forgot(elsewhere)).status_code == 202


async def test_a_limited_reset_changes_nothing(
    database_url: str, clean_engine: AsyncEngine
) -> None:
    async with serve(database_url, RECOVERY_REQUESTS_PER_HOUR=1) as (app, http):
        await register(http)
        inbox = Inbox(app)
        await inbox.new()
        token = await reset_token(http, inbox)  # the one request of the hour

        assert_detail(await reset(http, token), 429)

        await login(http, ANN, PASSWORD)
        await assert_invalid_grant(http, ANN, NEW_PASSWORD)


async def test_requests_within_the_cooldown_send_one_mail(
    app: FastAPI, client: AsyncClient, clean_engine: AsyncEngine
) -> None:
    await register(client)
    inbox = Inbox(app)
    await inbox.new()

    for path in (FORGOT, FORGOT, VERIFY_REQUEST):
        response = await client.post(path, json={"email": ANN})
        assert response.status_code == 202, response.text

    [message] = await inbox.new()
    assert message.to == ANN
    link_token(message, "reset-password")
    # The extra requests were dropped, not kept for later.
    assert await count(clean_engine, "mail_requests") == 0
    assert await inbox.new() == []


# POST /auth/password/reset


async def test_a_reset_sets_the_password_ends_every_session_and_answers_no_tokens(
    app: FastAPI, client: AsyncClient
) -> None:
    await register(client)
    inbox = Inbox(app)
    await inbox.new()
    pairs = []
    for _ in range(2):
        answer = await token_response(client, ANN)
        assert answer.status_code == 200, answer.text
        pairs.append(answer.json())
    token = await reset_token(client, inbox)

    response = await reset(client, token)

    assert response.status_code == 204, response.text
    assert response.content == b""
    for pair in pairs:
        ended = await client.get("/users/me", headers=bearer(pair["access_token"]))
        assert ended.status_code == 401, ended.text
        refreshed = await client.post(
            "/auth/token",
            data={"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]},
        )
        assert refreshed.status_code == 400, refreshed.text
        assert refreshed.json()["error"] == "invalid_grant"
    await assert_invalid_grant(client, ANN, PASSWORD)
    access = await login(client, ANN, NEW_PASSWORD)
    assert (await me(client, access))["email_verified"] is True  # the link reached it
    [notice] = await inbox.new()
    assert (notice.to, notice.subject) == (ANN, "Your password was changed")
    assert "#token=" not in notice.text


async def test_a_reset_token_works_once(app: FastAPI, client: AsyncClient) -> None:
    await register(client)
    inbox = Inbox(app)
    await inbox.new()
    token = await reset_token(client, inbox)
    assert (await reset(client, token)).status_code == 204

    assert_invalid_token(await reset(client, token, "another-horse-battery"))

    await assert_invalid_grant(client, ANN, "another-horse-battery")
    await login(client, ANN, NEW_PASSWORD)


async def test_an_expired_reset_token_is_refused(
    app: FastAPI, client: AsyncClient, clean_engine: AsyncEngine
) -> None:
    await register(client)
    inbox = Inbox(app)
    await inbox.new()
    token = await reset_token(client, inbox)
    async with clean_engine.begin() as connection:
        expired = await connection.execute(
            text(
                "UPDATE one_time_tokens SET expires_at = created_at "
                "WHERE purpose = 'password_reset'"
            )
        )
        assert expired.rowcount == 1

    assert_invalid_token(await reset(client, token))

    await login(client, ANN, PASSWORD)


async def test_a_newer_reset_link_voids_the_older(
    database_url: str, clean_engine: AsyncEngine
) -> None:
    async with serve(database_url, RECOVERY_EMAIL_COOLDOWN_SECONDS=0) as (app, http):
        await register(http)
        inbox = Inbox(app)
        await inbox.new()
        older = await reset_token(http, inbox)
        newer = await reset_token(http, inbox)

        assert_invalid_token(await reset(http, older))
        assert (await reset(http, newer)).status_code == 204

        await login(http, ANN, NEW_PASSWORD)


async def test_a_password_change_voids_an_outstanding_reset_link(
    app: FastAPI, client: AsyncClient
) -> None:
    _, access = await user_token(client)
    inbox = Inbox(app)
    await inbox.new()
    token = await reset_token(client, inbox)
    changed = await client.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": "changed-on-purpose-7"},
        headers=bearer(access),
    )
    assert changed.status_code == 204, changed.text

    assert_invalid_token(await reset(client, token))

    await login(client, ANN, "changed-on-purpose-7")


async def test_a_reset_clears_the_login_lockout_of_the_email(
    database_url: str, clean_engine: AsyncEngine
) -> None:
    async with serve(database_url, LOGIN_MAX_FAILURES=2) as (app, http):
        await register(http)
        inbox = Inbox(app)
        await inbox.new()
        for _ in range(2):
            await token_response(http, ANN, "a-wrong-password")
        assert (await token_response(http, ANN, PASSWORD)).status_code == 429  # locked

        token = await reset_token(http, inbox)
        assert (await reset(http, token)).status_code == 204

        assert (await token_response(http, ANN, NEW_PASSWORD)).status_code == 200


@pytest.mark.parametrize("change", ["deactivated", "deleted"])
async def test_the_reset_token_of_an_inactive_or_deleted_user_is_refused(
    app: FastAPI, client: AsyncClient, change: str
) -> None:
    _, admin = await admin_token(app, client)
    user = await register(client)
    inbox = Inbox(app)
    await inbox.new()
    token = await reset_token(client, inbox)
    if change == "deactivated":
        done = await client.patch(
            f"/users/{user['id']}", json={"is_active": False}, headers=bearer(admin)
        )
        assert done.status_code == 200, done.text
    else:
        done = await client.delete(f"/users/{user['id']}", headers=bearer(admin))
        assert done.status_code == 204, done.text

    assert_invalid_token(await reset(client, token))


async def test_a_reset_refuses_unknown_tokens_and_verification_tokens(
    app: FastAPI, client: AsyncClient
) -> None:
    await register(client)
    verification = await Inbox(app).token("verify-email")

    for token in ("a-token-never-issued", "x" * 4096, "é\u200b\x00", verification):
        assert_invalid_token(await reset(client, token))

    await login(client, ANN, PASSWORD)
    # A reset endpoint does not spend a verification token, and vice versa.
    assert (await verify(client, verification)).status_code == 204


@pytest.mark.parametrize(
    ("weak", "detail"),
    [
        ("short", "Password must be at least 8 characters"),
        ("password123", "Password is too common"),
    ],
)
async def test_a_password_rule_failure_is_400_and_spends_nothing(
    app: FastAPI, client: AsyncClient, weak: str, detail: str
) -> None:
    await register(client)
    inbox = Inbox(app)
    await inbox.new()
    token = await reset_token(client, inbox)

    refused = await reset(client, token, weak)

    assert_detail(refused, 400)
    assert refused.json() == {"detail": detail}
    await login(client, ANN, PASSWORD)
    assert (await reset(client, token)).status_code == 204  # the link still works


async def test_a_token_in_the_query_string_is_422_and_changes_nothing(
    app: FastAPI, client: AsyncClient
) -> None:
    await register(client)
    inbox = Inbox(app)
    verification = await inbox.token("verify-email")
    token = await reset_token(client, inbox)

    for response in (
        await client.post(RESET, params={"token": token, "new_password": NEW_PASSWORD}),
        await client.post(RESET, params={"token": token}, json={"new_password": NEW_PASSWORD}),
        await client.post(VERIFY, params={"token": verification}),
        await client.post(VERIFY, params={"token": verification}, json={}),
    ):
        assert_shape_error(response, token, verification)

    access = await login(client, ANN, PASSWORD)
    assert (await me(client, access))["email_verified"] is False
    # Neither token was spent.
    assert (await verify(client, verification)).status_code == 204
    assert (await reset(client, token)).status_code == 204


MALFORMED_TOKEN_BODIES = [
    *(
        (path, body)
        for path, extra in ((RESET, {"new_password": NEW_PASSWORD}), (VERIFY, {}))
        for body in (
            {},
            {"token": ""} | extra,
            {"token": 5} | extra,
            {"token": "x" * 4097} | extra,
            {"token": "x", "email": ANN} | extra,
        )
    ),
    (RESET, {"token": "x"}),
    (RESET, {"token": "x", "new_password": None}),
]


@pytest.mark.parametrize(("path", "body"), MALFORMED_TOKEN_BODIES)
async def test_a_malformed_token_body_is_422(
    client: AsyncClient, path: str, body: dict[str, object]
) -> None:
    assert_shape_error(await client.post(path, json=body))


# Verification


async def test_registration_mails_a_link_under_frontend_url_whatever_the_host(
    app: FastAPI, client: AsyncClient
) -> None:
    forged = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    body = {"name": "Ann", "email": ANN, "password": PASSWORD}
    assert (await client.post("/users", json=body, headers=forged)).status_code == 201

    [message] = await Inbox(app).new()

    assert (message.to, message.to_name) == (ANN, "Ann")
    assert message.subject == "Confirm your email address"
    token = link_token(message, "verify-email")
    link = f"{FRONTEND_URL}/verify-email#token={token}"
    assert link in message.text
    assert f'href="{link}"' in message.html
    assert "evil.example" not in message.text + message.html
    assert "?token=" not in message.text + message.html


async def test_verify_marks_the_email_verified_and_may_be_repeated(
    app: FastAPI, client: AsyncClient
) -> None:
    _, access = await user_token(client)
    token = await Inbox(app).token("verify-email")
    assert (await me(client, access))["email_verified"] is False

    first = await verify(client, token)

    assert first.status_code == 204, first.text
    assert first.content == b""
    verified = await me(client, access)
    assert verified["email_verified"] is True
    again = await verify(client, token)
    assert again.status_code == 204, again.text
    assert await me(client, access) == verified  # nothing changed


async def test_verify_refuses_unknown_tokens_and_reset_tokens(
    app: FastAPI, client: AsyncClient
) -> None:
    _, access = await user_token(client)
    inbox = Inbox(app)
    await inbox.new()
    token = await reset_token(client, inbox)

    for presented in ("a-token-never-issued", "x" * 4096, token):
        assert_invalid_token(await verify(client, presented))

    assert (await me(client, access))["email_verified"] is False
    assert (await reset(client, token)).status_code == 204  # not spent by verify


async def test_an_expired_verification_token_is_refused(
    app: FastAPI, client: AsyncClient, clean_engine: AsyncEngine
) -> None:
    _, access = await user_token(client)
    token = await Inbox(app).token("verify-email")
    async with clean_engine.begin() as connection:
        expired = await connection.execute(
            text(
                "UPDATE one_time_tokens SET expires_at = created_at "
                "WHERE purpose = 'email_verification'"
            )
        )
        assert expired.rowcount == 1

    assert_invalid_token(await verify(client, token))

    assert (await me(client, access))["email_verified"] is False


async def test_a_verification_request_for_a_verified_address_sends_nothing(
    app: FastAPI, client: AsyncClient
) -> None:
    await register(client)
    inbox = Inbox(app)
    assert (await verify(client, await inbox.token("verify-email"))).status_code == 204

    answer = await client.post(VERIFY_REQUEST, json={"email": ANN})

    assert answer.status_code == 202
    assert answer.json() == {"detail": VERIFICATION_SENT}
    assert await inbox.new() == []


@pytest.mark.parametrize("by", ["self", "admin"])
@pytest.mark.parametrize("old_verified", [True, False])
async def test_a_changed_email_is_unverified_and_gets_a_link_of_its_own(
    app: FastAPI, client: AsyncClient, by: str, old_verified: bool
) -> None:
    _, admin = await admin_token(app, client)
    user, access = await user_token(client)
    inbox = Inbox(app)
    old_link = await inbox.token("verify-email")
    if old_verified:
        assert (await verify(client, old_link)).status_code == 204
    old_reset = await reset_token(client, inbox)
    where, caller = ("/users/me", access) if by == "self" else (f"/users/{user['id']}", admin)

    changed = await client.patch(
        where, json={"email": "ann.new@example.com"}, headers=bearer(caller)
    )

    assert changed.status_code == 200, changed.text
    assert changed.json()["email"] == "ann.new@example.com"
    assert changed.json()["email_verified"] is False
    new_link = await inbox.token("verify-email", "ann.new@example.com")
    # Links sent to the old address no longer work.
    assert_invalid_token(await verify(client, old_link))
    assert_invalid_token(await reset(client, old_reset))
    assert (await me(client, access))["email_verified"] is False
    assert (await verify(client, new_link)).status_code == 204
    assert (await me(client, access))["email_verified"] is True


@pytest.mark.parametrize("by", ["self", "admin"])
async def test_changing_the_email_back_does_not_revive_the_old_links(
    app: FastAPI, client: AsyncClient, by: str
) -> None:
    _, admin = await admin_token(app, client)
    user, access = await user_token(client)
    inbox = Inbox(app)
    old_link = await inbox.token("verify-email")
    old_reset = await reset_token(client, inbox)
    where, caller = ("/users/me", access) if by == "self" else (f"/users/{user['id']}", admin)
    for email in ("ann.new@example.com", ANN):
        changed = await client.patch(where, json={"email": email}, headers=bearer(caller))
        assert changed.status_code == 200, changed.text
    assert len(await inbox.new()) == 2  # a link to each new address

    assert_invalid_token(await verify(client, old_link))
    assert_invalid_token(await reset(client, old_reset))
    assert (await me(client, access))["email_verified"] is False


async def test_an_unchanged_email_stays_verified_and_gets_no_mail(
    app: FastAPI, client: AsyncClient
) -> None:
    _, access = await user_token(client)
    inbox = Inbox(app)
    assert (await verify(client, await inbox.token("verify-email"))).status_code == 204

    same = await client.patch(
        "/users/me", json={"email": " ANN@Example.com ", "name": "Annie"}, headers=bearer(access)
    )

    assert same.status_code == 200, same.text
    assert same.json()["email_verified"] is True
    assert await inbox.new() == []


async def test_an_admin_made_by_create_admin_is_verified_and_gets_no_mail(
    app: FastAPI, client: AsyncClient
) -> None:
    _, admin = await admin_token(app, client)

    assert (await me(client, admin))["email_verified"] is True
    assert await Inbox(app).new() == []


async def test_require_verified_email_refuses_the_right_password_of_an_unverified_user(
    database_url: str, clean_engine: AsyncEngine
) -> None:
    async with serve(database_url, REQUIRE_VERIFIED_EMAIL=True) as (app, http):
        await register(http)
        token = await Inbox(app).token("verify-email")

        unverified = await token_response(http, ANN, PASSWORD)
        wrong = await token_response(http, ANN, "a-wrong-password")
        unknown = await token_response(http, "nobody@example.com", PASSWORD)

        assert unverified.status_code == 400, unverified.text
        assert unverified.json() == {
            "error": "invalid_grant",
            "error_description": "Email address not verified",
        }
        # A wrong password learns nothing about verification.
        assert wrong.status_code == 400, wrong.text
        assert wrong.json() == unknown.json()
        assert wrong.json()["error"] == "invalid_grant"
        assert wrong.json()["error_description"] != "Email address not verified"

        assert (await verify(http, token)).status_code == 204
        assert (await token_response(http, ANN, PASSWORD)).status_code == 200


async def test_require_verified_email_lets_a_reset_user_in(
    database_url: str, clean_engine: AsyncEngine
) -> None:
    async with serve(database_url, REQUIRE_VERIFIED_EMAIL=True) as (app, http):
        await register(http)
        inbox = Inbox(app)
        await inbox.new()
        token = await reset_token(http, inbox)

        assert (await reset(http, token)).status_code == 204

        assert (await token_response(http, ANN, NEW_PASSWORD)).status_code == 200
