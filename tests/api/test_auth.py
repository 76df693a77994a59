"""POST /auth/token (RFC 6749), bearer tokens (RFC 6750), docs, health and CORS."""

import asyncio
import base64
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, NamedTuple, Protocol

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from jose import jwt
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.main import create_app
from tests.api.helpers import (
    PASSWORD,
    admin_token,
    bearer,
    login,
    register,
    token_response,
    user_token,
)
from tests.conftest import TEST_SECRET, make_settings

ANN = "ann@example.com"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
OTHER_SECRET = "another-secret-key-that-is-long-enough-9876543210"
# 32 random bytes in URL-safe base64, unpadded.
REFRESH_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


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


def assert_oauth_error(response: Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == error
    assert set(body) <= {"error", "error_description"}
    assert isinstance(body.get("error_description", ""), str)
    return body


def assert_unauthorized(response: Response, *, invalid_token: bool) -> None:
    assert response.status_code == 401, response.text
    assert set(response.json()) == {"detail"}
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer")
    if invalid_token:
        assert 'error="invalid_token"' in challenge
    else:
        assert challenge == "Bearer"


def decode(token: str, **options: Any) -> dict[str, Any]:
    return jwt.decode(token, TEST_SECRET, algorithms=["HS256"], **options)


class Signed(NamedTuple):
    """A registered user and one of its live sessions, to craft tokens for."""

    user_id: str
    session_id: str


async def signed_in(client: AsyncClient) -> Signed:
    user = await register(client)
    return Signed(user["id"], decode(await login(client))["sid"])


def claims_for(signed: Signed, **overrides: Any) -> dict[str, Any]:
    """Claims as the service issues them (`ver` is the user's token version)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": signed.user_id,
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        "type": "access",
        "ver": 0,
        "sid": signed.session_id,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def sign(claims: dict[str, Any], key: str = TEST_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def _segment(part: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def unsigned(signed: Signed) -> str:
    return f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(claims_for(signed))}."


def tampered(signed: Signed) -> str:
    header, _, signature = sign(claims_for(signed)).split(".")
    return f"{header}.{_segment(claims_for(signed, role='admin'))}.{signature}"


async def me(client: AsyncClient, token: str) -> Response:
    return await client.get("/users/me", headers=bearer(token))


# POST /auth/token: success


async def test_token_response_is_rfc6749(client: AsyncClient, settings: Settings) -> None:
    user = await register(client)
    before = int(time.time())

    response = await token_response(client, ANN)

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "refresh_token_expires_in",
    }
    assert body["token_type"] == "bearer"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    claims = decode(body["access_token"])
    assert claims["sub"] == user["id"]
    assert claims["type"] == "access"
    assert isinstance(claims["jti"], str)
    assert claims["jti"]
    assert before <= claims["iat"] <= int(time.time())
    assert type(body["expires_in"]) is int
    assert body["expires_in"] == claims["exp"] - claims["iat"]
    assert body["expires_in"] == settings.ACCESS_TOKEN_EXPIRE_MINUTES * 60
    assert uuid.UUID(claims["sid"])
    assert REFRESH_TOKEN.fullmatch(body["refresh_token"]), body["refresh_token"]
    assert type(body["refresh_token_expires_in"]) is int
    lifetime_minutes = min(
        settings.REFRESH_TOKEN_EXPIRE_MINUTES, settings.SESSION_MAX_LIFETIME_MINUTES
    )
    assert body["refresh_token_expires_in"] == lifetime_minutes * 60


async def test_each_login_is_a_session_of_its_own(client: AsyncClient) -> None:
    await register(client)
    first, second = await token_response(client, ANN), await token_response(client, ANN)
    assert (
        decode(first.json()["access_token"])["sid"] != decode(second.json()["access_token"])["sid"]
    )
    assert first.json()["refresh_token"] != second.json()["refresh_token"]


async def test_each_token_has_its_own_jti(client: AsyncClient) -> None:
    await register(client)
    first, second = await login(client), await login(client)
    assert decode(first)["jti"] != decode(second)["jti"]


async def test_username_is_normalised(client: AsyncClient) -> None:
    user = await register(client)
    token = await login(client, " ANN@Example.com ")
    assert decode(token)["sub"] == user["id"]


@pytest.mark.parametrize(
    "extra",
    [
        {"grant_type": "password"},
        {},
        {"grant_type": ""},  # an empty parameter counts as omitted
        {"scope": "read write admin"},
        {"client_id": "some-client", "client_secret": "whatever"},
    ],
    ids=["grant-password", "grant-omitted", "grant-empty", "scope", "client-credentials"],
)
async def test_token_accepts(client: AsyncClient, extra: dict[str, str]) -> None:
    await register(client)
    response = await client.post(
        "/auth/token", data={"username": ANN, "password": PASSWORD, **extra}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded; charset=utf-8", "Application/X-WWW-Form-Urlencoded"],
)
async def test_form_content_type_parameters_are_accepted(
    client: AsyncClient, content_type: str
) -> None:
    await register(client)
    response = await client.post(
        "/auth/token",
        content=f"username={ANN}&password={PASSWORD}",
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 200, response.text


async def test_basic_client_authentication_is_ignored(client: AsyncClient) -> None:
    await register(client)
    basic = base64.b64encode(b"client:secret").decode()
    response = await client.post(
        "/auth/token",
        data={"username": ANN, "password": PASSWORD},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200, response.text


# POST /auth/token: failures


@pytest.mark.parametrize(
    "grant_type", ["client_credentials", "authorization_code", "PASSWORD", "REFRESH_TOKEN"]
)
async def test_other_grant_types_are_unsupported(client: AsyncClient, grant_type: str) -> None:
    await register(client)
    response = await client.post(
        "/auth/token", data={"grant_type": grant_type, "username": ANN, "password": PASSWORD}
    )
    assert_oauth_error(response, 400, "unsupported_grant_type")


@pytest.mark.parametrize(
    "data",
    [
        {"password": PASSWORD},
        {"username": ANN},
        {"username": ANN, "password": ""},
        {"username": "", "password": PASSWORD},
        {},
    ],
    ids=["no-username", "no-password", "empty-password", "empty-username", "nothing"],
)
async def test_missing_credentials_are_invalid_request(
    client: AsyncClient, data: dict[str, str]
) -> None:
    await register(client)
    response = await client.post("/auth/token", data=data)
    assert_oauth_error(response, 400, "invalid_request")


async def test_json_body_is_invalid_request(client: AsyncClient) -> None:
    await register(client)
    response = await client.post("/auth/token", json={"username": ANN, "password": PASSWORD})
    assert_oauth_error(response, 400, "invalid_request")


@pytest.mark.parametrize("name", ["username", "password", "grant_type"])
async def test_repeated_parameter_is_invalid_request(client: AsyncClient, name: str) -> None:
    await register(client)
    fields = {"grant_type": "password", "username": ANN, "password": PASSWORD}
    pairs = [*fields.items(), (name, fields[name])]
    content = "&".join(f"{k}={v}" for k, v in pairs).replace("@", "%40")
    response = await client.post("/auth/token", content=content, headers=FORM)
    assert_oauth_error(response, 400, "invalid_request")


async def test_wrong_password_and_unknown_email_look_the_same(client: AsyncClient) -> None:
    await register(client)
    wrong = await token_response(client, ANN, "not-the-password")
    unknown = await token_response(client, "nobody@example.com")
    assert_oauth_error(wrong, 400, "invalid_grant")
    assert_oauth_error(unknown, 400, "invalid_grant")
    assert wrong.content == unknown.content


async def test_username_that_is_not_an_email_is_invalid_grant(client: AsyncClient) -> None:
    response = await token_response(client, "not an email")
    assert_oauth_error(response, 400, "invalid_grant")


async def test_inactive_user_is_invalid_grant(app: FastAPI, client: AsyncClient) -> None:
    user = await register(client)
    _, admin = await admin_token(app, client)
    response = await client.patch(
        f"/users/{user['id']}", json={"is_active": False}, headers=bearer(admin)
    )
    assert response.status_code == 200, response.text

    inactive = await token_response(client, ANN)
    wrong = await token_response(client, "root@example.com", "not-the-password")

    assert_oauth_error(inactive, 400, "invalid_grant")
    assert inactive.content == wrong.content


async def test_token_endpoint_405_uses_the_rfc6749_body(client: AsyncClient) -> None:
    response = await client.get("/auth/token")
    assert_oauth_error(response, 405, "invalid_request")


# Brute-force lockout


async def _fail(client: AsyncClient, username: str, times: int) -> None:
    for _ in range(times):
        response = await token_response(client, username, "not-the-password")
        assert_oauth_error(response, 400, "invalid_grant")


def assert_locked(response: Response, lockout_seconds: int) -> None:
    assert_oauth_error(response, 429, "temporarily_unavailable")
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit(), retry_after
    assert 1 <= int(retry_after) <= lockout_seconds


async def test_lockout_refuses_even_the_right_password(client_with: ClientFactory) -> None:
    async with client_with(LOGIN_MAX_FAILURES=3) as client:
        await register(client)
        await _fail(client, ANN, 3)

        for _ in range(2):  # refused attempts do not end the lockout
            assert_locked(await token_response(client, ANN), 900)


async def test_lockout_applies_to_unknown_emails(client_with: ClientFactory) -> None:
    async with client_with(LOGIN_MAX_FAILURES=2) as client:
        await _fail(client, "ghost@example.com", 2)
        assert_locked(await token_response(client, "ghost@example.com"), 900)


async def test_lockout_is_per_username(client_with: ClientFactory) -> None:
    async with client_with(LOGIN_MAX_FAILURES=2) as client:
        await register(client)
        await register(client, "bob@example.com", name="Bob")
        await _fail(client, ANN, 2)

        assert_locked(await token_response(client, ANN), 900)
        assert (await token_response(client, "bob@example.com")).status_code == 200


async def test_success_resets_the_failure_count(client_with: ClientFactory) -> None:
    async with client_with(LOGIN_MAX_FAILURES=3) as client:
        await register(client)
        await _fail(client, ANN, 2)
        await login(client)
        await _fail(client, ANN, 2)

        assert (await token_response(client, ANN)).status_code == 200


async def test_lockout_ends_after_the_lockout_period(client_with: ClientFactory) -> None:
    async with client_with(LOGIN_MAX_FAILURES=2, LOGIN_LOCKOUT_SECONDS=1) as client:
        await register(client)
        await _fail(client, ANN, 2)
        assert_locked(await token_response(client, ANN), 1)

        await asyncio.sleep(1.1)

        assert (await token_response(client, ANN)).status_code == 200


async def test_case_variants_share_one_counter(client_with: ClientFactory) -> None:
    async with client_with(LOGIN_MAX_FAILURES=3) as client:
        await register(client)
        for variant in ("ANN@example.com", " ann@EXAMPLE.com", "Ann@Example.Com "):
            await _fail(client, variant, 1)

        assert_locked(await token_response(client, ANN), 900)


async def test_failures_outside_the_window_do_not_add_up(client_with: ClientFactory) -> None:
    async with client_with(LOGIN_MAX_FAILURES=2, LOGIN_LOCKOUT_SECONDS=1) as client:
        await register(client)
        await _fail(client, ANN, 1)
        await asyncio.sleep(1.1)
        await _fail(client, ANN, 1)

        assert (await token_response(client, ANN)).status_code == 200


async def test_concurrent_failures_are_all_counted(client_with: ClientFactory) -> None:
    async with client_with(LOGIN_MAX_FAILURES=5) as client:
        await register(client)
        responses = await asyncio.gather(
            *(token_response(client, ANN, "not-the-password") for _ in range(5))
        )
        assert sorted(r.status_code for r in responses) == [400] * 5

        assert_locked(await token_response(client, ANN), 900)


async def test_a_burst_of_wrong_passwords_checks_at_most_the_limit(
    client_with: ClientFactory,
) -> None:
    async with client_with(LOGIN_MAX_FAILURES=5) as client:
        await register(client)
        responses = await asyncio.gather(
            *(token_response(client, ANN, "not-the-password") for _ in range(50))
        )
        statuses = [r.status_code for r in responses]
        # A 400 is a password that was checked; the rest were refused unchecked.
        assert statuses.count(400) == 5, statuses
        assert statuses.count(429) == 45, statuses

        assert_locked(await token_response(client, ANN), 900)  # the right one, after


async def test_the_right_password_inside_a_burst_past_the_limit_is_refused(
    client_with: ClientFactory,
) -> None:
    async with client_with(LOGIN_MAX_FAILURES=5) as client:
        await register(client)
        burst = [
            asyncio.create_task(token_response(client, ANN, "not-the-password")) for _ in range(50)
        ]
        # Once five have answered, five attempts were counted: the limit.
        for answered, done in enumerate(asyncio.as_completed(burst), start=1):
            await done
            if answered == 5:
                break
        right = await token_response(client, ANN)
        statuses = [r.status_code for r in await asyncio.gather(*burst)]

        assert_locked(right, 900)
        assert statuses.count(400) == 5, statuses


async def test_simultaneous_right_logins_of_one_account_all_succeed(
    client_with: ClientFactory,
) -> None:
    async with client_with(LOGIN_MAX_FAILURES=2) as client:
        await register(client)
        responses = await asyncio.gather(*(token_response(client, ANN) for _ in range(10)))
        assert [r.status_code for r in responses] == [200] * 10


async def test_usernames_that_are_not_emails_are_not_counted(client_with: ClientFactory) -> None:
    async with client_with(LOGIN_MAX_FAILURES=2) as client:
        for _ in range(3):
            response = await token_response(client, "not an email", "not-the-password")
            assert_oauth_error(response, 400, "invalid_grant")


async def test_lockout_is_shared_between_app_instances(client_with: ClientFactory) -> None:
    async with (
        client_with(LOGIN_MAX_FAILURES=2) as first,
        client_with(LOGIN_MAX_FAILURES=2) as second,
    ):
        await register(first)
        await _fail(first, ANN, 1)
        await _fail(second, ANN, 1)

        assert_locked(await token_response(first, ANN), 900)
        assert_locked(await token_response(second, ANN), 900)


# Hash upgrade


async def _stored_hash(engine: AsyncEngine, email: str) -> str:
    async with engine.connect() as connection:
        hashed = await connection.scalar(
            text("SELECT hashed_password FROM users WHERE email = :email"), {"email": email}
        )
    assert isinstance(hashed, str)
    return hashed


async def test_weaker_hash_is_upgraded_at_login(
    client: AsyncClient, client_with: ClientFactory, clean_engine: AsyncEngine
) -> None:
    await register(client)  # BCRYPT_ROUNDS=4
    assert (await _stored_hash(clean_engine, ANN)).startswith("$2b$04$")

    async with client_with(BCRYPT_ROUNDS=5) as stronger:
        await login(stronger)
        assert (await _stored_hash(clean_engine, ANN)).startswith("$2b$05$")
        await login(stronger)  # the new hash still verifies


# Bearer tokens on GET /users/me


async def test_crafted_token_with_the_issued_claims_works(client: AsyncClient) -> None:
    # Guards the cases below: each breaks exactly one thing in such a token.
    signed = await signed_in(client)
    assert (await me(client, sign(claims_for(signed)))).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer "}, {"Authorization": "Bearer"}, {"Authorization": "Basic xxx"}],
    ids=["missing", "bearer-empty", "bearer-only", "basic"],
)
async def test_no_bearer_token_is_401_without_error(
    client: AsyncClient, headers: dict[str, str]
) -> None:
    await register(client)
    response = await client.get("/users/me", headers=headers)
    assert_unauthorized(response, invalid_token=False)


async def test_bearer_scheme_is_case_insensitive(client: AsyncClient) -> None:
    _, token = await user_token(client)
    response = await client.get("/users/me", headers={"Authorization": f"bearer {token}"})
    assert response.status_code == 200, response.text


def without(signed: Signed, claim: str) -> str:
    return sign({k: v for k, v in claims_for(signed).items() if k != claim})


BAD_TOKENS: dict[str, Callable[[Signed], str]] = {
    "malformed": lambda _: "not-a-jwt",
    "three-garbage-parts": lambda _: "abc.def.ghi",
    "oversized": lambda s: sign(claims_for(s, pad="x" * 5000)),
    "other-key": lambda s: sign(claims_for(s), key=OTHER_SECRET),
    "alg-none": unsigned,
    "alg-hs512": lambda s: sign(claims_for(s), algorithm="HS512"),
    "tampered-payload": tampered,
    "expired": lambda s: sign(claims_for(s, iat=int(time.time()) - 120, exp=int(time.time()) - 60)),
    "type-refresh": lambda s: sign(claims_for(s, type="refresh")),
    "no-type": lambda s: without(s, "type"),
    "no-exp": lambda s: without(s, "exp"),
    "no-sub": lambda s: without(s, "sub"),
    "no-sid": lambda s: without(s, "sid"),
    # The session is live, but it is not this subject's.
    "random-uuid-sub": lambda s: sign(claims_for(s, sub=str(uuid.uuid4()))),
    "non-uuid-sub": lambda s: sign(claims_for(s, sub="not-a-uuid")),
    "unknown-sid": lambda s: sign(claims_for(s, sid=str(uuid.uuid4()))),
    "non-uuid-sid": lambda s: sign(claims_for(s, sid="not-a-uuid")),
    "sid-not-a-string": lambda s: sign(claims_for(s, sid=12345)),
    "exp-infinity": lambda s: sign(claims_for(s, exp=float("inf"))),
    "exp-not-a-number": lambda s: sign(claims_for(s, exp="tomorrow")),
    "sub-not-a-string": lambda s: sign(claims_for(s, sub=12345)),
    "stale-version": lambda s: sign(claims_for(s, ver=1)),
}


@pytest.mark.parametrize("make_token", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
async def test_bad_bearer_token_is_401_invalid_token(
    client: AsyncClient, make_token: Callable[[Signed], str]
) -> None:
    response = await me(client, make_token(await signed_in(client)))
    assert_unauthorized(response, invalid_token=True)


async def test_token_of_a_deleted_user_is_401(client: AsyncClient) -> None:
    _, token = await user_token(client)
    assert (await client.delete("/users/me", headers=bearer(token))).status_code == 204
    assert_unauthorized(await me(client, token), invalid_token=True)


async def test_token_of_a_deactivated_user_is_401(app: FastAPI, client: AsyncClient) -> None:
    user, token = await user_token(client)
    _, admin = await admin_token(app, client)
    response = await client.patch(
        f"/users/{user['id']}", json={"is_active": False}, headers=bearer(admin)
    )
    assert response.status_code == 200, response.text
    assert_unauthorized(await me(client, token), invalid_token=True)


async def test_configured_algorithm_is_the_only_one_accepted(client_with: ClientFactory) -> None:
    async with client_with(JWT_ALGORITHM="HS512") as client:
        user, token = await user_token(client)
        assert jwt.get_unverified_header(token)["alg"] == "HS512"
        assert (await me(client, token)).status_code == 200
        signed = Signed(user["id"], jwt.get_unverified_claims(token)["sid"])

        response = await me(client, sign(claims_for(signed), algorithm="HS256"))

        assert_unauthorized(response, invalid_token=True)


ISSUER, AUDIENCE = "https://auth.example", "user-service"


async def test_issued_token_carries_issuer_and_audience(client_with: ClientFactory) -> None:
    async with client_with(JWT_ISSUER=ISSUER, JWT_AUDIENCE=AUDIENCE) as client:
        _, token = await user_token(client)
        claims = decode(token, audience=AUDIENCE, issuer=ISSUER)
        assert (claims["iss"], claims["aud"]) == (ISSUER, AUDIENCE)
        assert (await me(client, token)).status_code == 200


@pytest.mark.parametrize(
    ("iss", "aud", "status"),
    [
        (ISSUER, AUDIENCE, 200),
        ("https://evil.example", AUDIENCE, 401),
        (ISSUER, "another-service", 401),
        (None, AUDIENCE, 401),
        (ISSUER, None, 401),
    ],
    ids=["right", "wrong-iss", "wrong-aud", "no-iss", "no-aud"],
)
async def test_issuer_and_audience_are_checked(
    client_with: ClientFactory, iss: str | None, aud: str | None, status: int
) -> None:
    async with client_with(JWT_ISSUER=ISSUER, JWT_AUDIENCE=AUDIENCE) as client:
        user, token = await user_token(client)
        signed = Signed(user["id"], jwt.get_unverified_claims(token)["sid"])
        response = await me(client, sign(claims_for(signed, iss=iss, aud=aud)))
        assert response.status_code == status, response.text
        if status == 401:
            assert_unauthorized(response, invalid_token=True)


# Docs, health, CORS


async def test_openapi_declares_the_password_flow(client: AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    schemes = spec["components"]["securitySchemes"]
    password_flows = {
        name: scheme["flows"]["password"]["tokenUrl"]
        for name, scheme in schemes.items()
        if scheme["type"] == "oauth2" and "password" in scheme["flows"]
    }
    assert list(password_flows.values()) == ["/auth/token"]
    (name,) = password_flows
    assert {name: []} in spec["paths"]["/users/me"]["get"]["security"]


async def test_docs_is_swagger_ui(client: AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in response.text
    # The page starts Swagger UI from a script file (no inline script), on the schema.
    assert '<script src="/docs/swagger-init.js">' in response.text
    assert '"url": "/openapi.json"' in (await client.get("/docs/swagger-init.js")).text


@pytest.mark.parametrize("path", ["/health", "/health/ready"])
async def test_health(client: AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def _preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }


@pytest.mark.parametrize(
    "origins",
    [["http://front.example"], "http://front.example, http://admin.example"],
    ids=["list", "comma-separated"],
)
async def test_cors_allows_only_configured_origins(
    client_with: ClientFactory, origins: list[str] | str
) -> None:
    async with client_with(CORS_ORIGINS=origins) as client:
        allowed = await client.options("/users", headers=_preflight("http://front.example"))
        refused = await client.options("/users", headers=_preflight("http://evil.example"))
        simple = await client.get("/health", headers={"Origin": "http://front.example"})
        foreign = await client.get("/health", headers={"Origin": "http://evil.example"})

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://front.example"
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    assert simple.headers["access-control-allow-origin"] == "http://front.example"
    assert "access-control-allow-origin" not in foreign.headers


async def test_cors_origins_from_the_environment(
    client_with: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "http://front.example,http://admin.example")
    async with client_with() as client:
        for origin in ("http://front.example", "http://admin.example"):
            response = await client.options("/users", headers=_preflight(origin))
            assert response.status_code == 200
            assert response.headers["access-control-allow-origin"] == origin
