"""Odd input gets a clear 4xx, never a 5xx, and never has a password echoed back."""

import base64
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncEngine

from app.main import create_app
from tests.api.helpers import PASSWORD, admin_token, bearer, register, token_response, user_token
from tests.conftest import make_settings

# Distinctive, so a response that echoes it is easy to spot.
SECRET = "Zebra-Quartz-91-secret"
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
PARSE_ERROR = "There was an error parsing the body"
TOO_LARGE = "Request body too large"
BAD_NAME = "Name must be 1 to 100 characters"
BAD_EMAIL = "Invalid email address"
BAD_SECRET = "Password contains characters that cannot be used"
WRONG_CURRENT = "Current password is incorrect"
MiB = 1024 * 1024


class ClientFactory(Protocol):
    def __call__(self, **overrides: object) -> AbstractAsyncContextManager[AsyncClient]: ...


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    """As conftest's, but an unhandled error reaches the test as the 500 a server sends."""
    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
def client_with(database_url: str, clean_engine: AsyncEngine) -> ClientFactory:
    """Clients of apps built with other settings, over the emptied tables."""

    @asynccontextmanager
    async def open_client(**overrides: object) -> AsyncIterator[AsyncClient]:
        application = create_app(make_settings(database_url, **overrides))
        transport = ASGITransport(app=application, raise_app_exceptions=False)
        async with (
            LifespanManager(application),
            AsyncClient(transport=transport, base_url="http://test") as http,
        ):
            yield http

    return open_client


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    valid: dict[str, str]
    # The 400 detail for a NUL in each field: every field is checked by a domain rule.
    nul_detail: dict[str, str]


ENDPOINTS = [
    Endpoint(
        "POST",
        "/users",
        {"name": "Bob", "email": "bob@example.com", "password": SECRET},
        {"name": BAD_NAME, "email": BAD_EMAIL, "password": BAD_SECRET},
    ),
    Endpoint(
        "PATCH",
        "/users/me",
        {"name": "Bob", "email": "bob@example.com"},
        {"name": BAD_NAME, "email": BAD_EMAIL},
    ),
    Endpoint(
        "POST",
        "/users/me/password",
        {"current_password": PASSWORD, "new_password": SECRET},
        {"current_password": WRONG_CURRENT, "new_password": BAD_SECRET},
    ),
]
ENDPOINT_IDS = [f"{e.method} {e.path}" for e in ENDPOINTS]
FIELDS = [(e, f) for e in ENDPOINTS for f in e.valid]
FIELD_IDS = [f"{e.method} {e.path} {f}" for e, f in FIELDS]


def with_raw(valid: dict[str, str], raw: bytes, field: str | None = None) -> bytes:
    """The valid body with one value (the first by default) replaced by raw JSON text."""
    field = field or next(iter(valid))
    parts = [
        json.dumps(k).encode() + b": " + (raw if k == field else json.dumps(v).encode())
        for k, v in valid.items()
    ]
    return b"{" + b", ".join(parts) + b"}"


def with_value(valid: dict[str, str], field: str, value: str) -> bytes:
    return json.dumps({**valid, field: value}).encode()


@pytest.fixture
async def token(client: AsyncClient) -> str:
    _, token = await user_token(client)
    return token


async def send(
    client: AsyncClient,
    endpoint: Endpoint,
    token: str,
    content: bytes,
    headers: dict[str, str] | None = None,
) -> Response:
    return await client.request(
        endpoint.method,
        endpoint.path,
        content=content,
        headers=bearer(token) | (JSON if headers is None else headers),
    )


def assert_no_password(response: Response) -> None:
    assert SECRET not in response.text
    assert PASSWORD not in response.text


def assert_422(response: Response, *errors: tuple[list[str | int], str]) -> None:
    """FastAPI's shape without `input`: only (loc, type) pairs, plus a msg."""
    assert response.status_code == 422, response.text
    assert_no_password(response)
    body = response.json()
    assert set(body) == {"detail"}
    for item in body["detail"]:
        assert set(item) == {"loc", "msg", "type"}
        assert isinstance(item["msg"], str)
    assert [(item["loc"], item["type"]) for item in body["detail"]] == list(errors)


def assert_400(response: Response, detail: str) -> None:
    assert response.status_code == 400, response.text
    assert_no_password(response)
    assert response.json() == {"detail": detail}


# Odd JSON bodies, the same on every JSON endpoint that takes a body


ODD_VALUES: dict[str, bytes] = {
    "nan": b"NaN",
    "infinity": b"Infinity",
    "minus-infinity": b"-Infinity",
    "1e999": b"1e999",
    "long-float": b"1." + b"0" * 5000,
    "number": b"42",
    "object": b'{"$ne": null}',
    "array": b'["Bob"]',
}


@pytest.mark.parametrize("raw", ODD_VALUES.values(), ids=ODD_VALUES.keys())
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ENDPOINT_IDS)
async def test_non_string_value_is_422(
    client: AsyncClient, token: str, endpoint: Endpoint, raw: bytes
) -> None:
    response = await send(client, endpoint, token, with_raw(endpoint.valid, raw))
    field = next(iter(endpoint.valid))
    assert_422(response, (["body", field], "string_type"))


UNPARSABLE: dict[str, Callable[[dict[str, str]], bytes]] = {
    "invalid-utf8": lambda valid: with_raw(valid, b'"\xff\xfe"'),
    "truncated-utf8": lambda valid: with_raw(valid, b'"Bo\xc3"'),
    "huge-integer": lambda valid: with_raw(valid, b"9" * 5000),
    "nested-arrays": lambda _: b"[" * 10000,
    "nested-objects": lambda _: b'{"a": ' * 10000,
    "nested-value": lambda valid: with_raw(valid, b"[" * 10000 + b"]" * 10000),
}


@pytest.mark.parametrize("body", UNPARSABLE.values(), ids=UNPARSABLE.keys())
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ENDPOINT_IDS)
async def test_body_json_cannot_read_is_400(
    client: AsyncClient, token: str, endpoint: Endpoint, body: Callable[[dict[str, str]], bytes]
) -> None:
    response = await send(client, endpoint, token, body(endpoint.valid))
    assert_400(response, PARSE_ERROR)


NOT_AN_OBJECT: dict[str, bytes] = {
    "array": b"[]",
    "string": b'"x"',
    "null": b"null",
    "number": b"1",
    "true": b"true",
}


@pytest.mark.parametrize("body", NOT_AN_OBJECT.values(), ids=NOT_AN_OBJECT.keys())
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ENDPOINT_IDS)
async def test_body_that_is_not_an_object_is_422(
    client: AsyncClient, token: str, endpoint: Endpoint, body: bytes
) -> None:
    response = await send(client, endpoint, token, body)
    assert_422(response, (["body"], "model_attributes_type"))


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ENDPOINT_IDS)
async def test_empty_body_is_422(client: AsyncClient, token: str, endpoint: Endpoint) -> None:
    response = await send(client, endpoint, token, b"")
    assert_422(response, (["body"], "missing"))


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ENDPOINT_IDS)
async def test_truncated_json_is_422(client: AsyncClient, token: str, endpoint: Endpoint) -> None:
    content = json.dumps(endpoint.valid).encode()[:-5]
    with pytest.raises(json.JSONDecodeError) as parse_error:
        json.loads(content)
    response = await send(client, endpoint, token, content)
    assert_422(response, (["body", parse_error.value.pos], "json_invalid"))


@pytest.mark.parametrize(
    "headers",
    [{"Content-Type": "text/plain"}, FORM, {}],
    ids=["text-plain", "form", "no-content-type"],
)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ENDPOINT_IDS)
async def test_json_under_another_content_type_is_422(
    client: AsyncClient, token: str, endpoint: Endpoint, headers: dict[str, str]
) -> None:
    content = json.dumps(endpoint.valid).encode()
    response = await send(client, endpoint, token, content, headers)
    assert_422(response, (["body"], "model_attributes_type"))


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ENDPOINT_IDS)
async def test_unknown_field_is_422(client: AsyncClient, token: str, endpoint: Endpoint) -> None:
    content = json.dumps({**endpoint.valid, "role": "admin"}).encode()
    response = await send(client, endpoint, token, content)
    assert_422(response, (["body", "role"], "extra_forbidden"))


# Odd strings in each field


# json reads a UTF-8-encoded surrogate as the surrogate itself, like the escape.
@pytest.mark.parametrize("surrogate", [b"\\ud800", b"\xed\xa0\x80"], ids=["escaped", "encoded"])
@pytest.mark.parametrize(("endpoint", "field"), FIELDS, ids=FIELD_IDS)
async def test_lone_surrogate_is_422(
    client: AsyncClient, token: str, endpoint: Endpoint, field: str, surrogate: bytes
) -> None:
    content = with_raw(endpoint.valid, b'"Bo' + surrogate + b'b-long-enough"', field)
    response = await send(client, endpoint, token, content)
    assert_422(response, (["body", field], "string_unicode"))


@pytest.mark.parametrize(("endpoint", "field"), FIELDS, ids=FIELD_IDS)
async def test_nul_is_a_domain_400(
    client: AsyncClient, token: str, endpoint: Endpoint, field: str
) -> None:
    value = endpoint.valid[field] + "\x00"
    response = await send(client, endpoint, token, with_value(endpoint.valid, field, value))
    assert_400(response, endpoint.nul_detail[field])


@pytest.mark.parametrize("char", ["\x07", "\x1b", "\x7f", "\x85", "\n"])
@pytest.mark.parametrize("endpoint", ENDPOINTS[:2], ids=ENDPOINT_IDS[:2])
async def test_control_character_in_name_is_400(
    client: AsyncClient, token: str, endpoint: Endpoint, char: str
) -> None:
    content = with_value(endpoint.valid, "name", f"Bo{char}b")
    response = await send(client, endpoint, token, content)
    assert_400(response, BAD_NAME)


@pytest.mark.parametrize(("endpoint", "field"), FIELDS, ids=FIELD_IDS)
async def test_string_over_4096_characters_is_422(
    client: AsyncClient, token: str, endpoint: Endpoint, field: str
) -> None:
    content = with_value(endpoint.valid, field, "a" * 4097)
    response = await send(client, endpoint, token, content)
    assert_422(response, (["body", field], "string_too_long"))


@pytest.mark.parametrize("endpoint", ENDPOINTS[:2], ids=ENDPOINT_IDS[:2])
async def test_name_of_4096_characters_gets_the_domain_400(
    client: AsyncClient, token: str, endpoint: Endpoint
) -> None:
    content = with_value(endpoint.valid, "name", "a" * 4096)
    response = await send(client, endpoint, token, content)
    assert_400(response, BAD_NAME)


async def test_huge_number_as_name_is_422(client: AsyncClient) -> None:
    content = with_raw(ENDPOINTS[0].valid, b"1" + b"0" * 4000)
    response = await client.post("/users", content=content, headers=JSON)
    assert_422(response, (["body", "name"], "string_type"))


# POST /auth/token


def assert_oauth_error(response: Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert set(body) <= {"error", "error_description"}
    assert isinstance(body.get("error_description", ""), str)


ANN_FORM = b"ann%40example.com"
GOOD_FORM = b"correct-horse-battery"
# (username, password) as sent, already form-encoded, and the RFC 6749 error.
ODD_FIELDS: dict[str, tuple[bytes, bytes, str]] = {
    "raw-invalid-utf8-username": (b"\xff\xfe", GOOD_FORM, "invalid_grant"),
    "encoded-invalid-utf8-username": (b"%FF%FE", GOOD_FORM, "invalid_grant"),
    "raw-invalid-utf8-password": (ANN_FORM, b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", "invalid_grant"),
    "encoded-invalid-utf8-password": (ANN_FORM, b"%FF%FE%FD%FC%FB%FA%F9%F8", "invalid_grant"),
    "encoded-surrogate-password": (ANN_FORM, b"%ED%A0%80" + GOOD_FORM, "invalid_grant"),
    "nul-in-password": (ANN_FORM, GOOD_FORM + b"%00", "invalid_grant"),
    "nul-in-username": (ANN_FORM + b"%00", GOOD_FORM, "invalid_grant"),
    "73-byte-password": (ANN_FORM, b"a" * 73, "invalid_grant"),
    "74-byte-multibyte-password": (ANN_FORM, b"%C3%A9" * 37, "invalid_grant"),
    "bad-percent-escapes": (b"%zz", b"%", "invalid_grant"),
    "4097-char-username": (b"a" * 4097, GOOD_FORM, "invalid_request"),
    "4097-char-password": (ANN_FORM, b"a" * 4097, "invalid_request"),
}


@pytest.mark.parametrize(
    ("username", "password", "error"), ODD_FIELDS.values(), ids=ODD_FIELDS.keys()
)
async def test_odd_token_field_gets_rfc6749_400(
    client: AsyncClient, username: bytes, password: bytes, error: str
) -> None:
    await register(client)
    content = b"username=" + username + b"&password=" + password
    response = await client.post("/auth/token", content=content, headers=FORM)
    assert_oauth_error(response, 400, error)
    assert_no_password(response)


@pytest.mark.parametrize("content", [b"username&password", b"&&&==&", b"=", b"\x00\xff"])
async def test_malformed_token_form_is_invalid_request(client: AsyncClient, content: bytes) -> None:
    await register(client)
    response = await client.post("/auth/token", content=content, headers=FORM)
    assert_oauth_error(response, 400, "invalid_request")


async def test_72_byte_password_is_not_truncated(client: AsyncClient) -> None:
    password = "p" * 71 + "!"
    await register(client, password=password)
    assert (await token_response(client, "ann@example.com", password)).status_code == 200

    response = await token_response(client, "ann@example.com", password + "extra")

    assert_oauth_error(response, 400, "invalid_grant")


# Request bodies over MAX_BODY_BYTES


async def _chunks(content: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(content), 256):
        yield content[start : start + 256]


async def send_big(
    client: AsyncClient, method: str, path: str, content: bytes, mode: str, headers: dict[str, str]
) -> Response:
    """Sends chunked (no Content-Length), or with a Content-Length honest or lying."""
    if mode == "chunked":
        return await client.request(method, path, content=_chunks(content), headers=headers)
    lengths = {"honest": str(len(content)), "lying-low": "10", "lying-high": str(10 * MiB)}
    headers = headers | {"Content-Length": lengths[mode]}
    return await client.request(method, path, content=content, headers=headers)


def assert_413(response: Response, path: str) -> None:
    assert response.status_code == 413, response.text
    if path == "/auth/token":
        assert response.json() == {"error": "invalid_request", "error_description": TOO_LARGE}
    else:
        assert response.json() == {"detail": TOO_LARGE}


def _register_body(size: int) -> bytes:
    """A valid registration padded with whitespace to exactly `size` bytes."""
    body = json.dumps({"name": "Bob", "email": "bob@example.com", "password": SECRET})
    return (body[:-1] + " " * (size - len(body)) + "}").encode()


def _token_body(size: int) -> bytes:
    body = b"username=ann%40example.com&password=correct-horse-battery&scope="
    return body + b"x" * (size - len(body))


BIG_TARGETS = [("/users", JSON, _register_body, 201), ("/auth/token", FORM, _token_body, 200)]
MODES = ["honest", "lying-low", "lying-high", "chunked"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("path", "headers", "body"), [t[:3] for t in BIG_TARGETS], ids=["users", "token"]
)
async def test_body_over_the_configured_limit_is_413(
    client_with: ClientFactory,
    path: str,
    headers: dict[str, str],
    body: Callable[[int], bytes],
    mode: str,
) -> None:
    async with client_with(MAX_BODY_BYTES=1024) as client:
        await register(client)
        response = await send_big(client, "POST", path, body(1025), mode, headers)
    assert_413(response, path)


@pytest.mark.parametrize("mode", ["honest", "chunked"])
@pytest.mark.parametrize(("path", "headers", "body", "ok"), BIG_TARGETS, ids=["users", "token"])
async def test_body_at_the_configured_limit_is_read(
    client_with: ClientFactory,
    path: str,
    headers: dict[str, str],
    body: Callable[[int], bytes],
    ok: int,
    mode: str,
) -> None:
    async with client_with(MAX_BODY_BYTES=1024) as client:
        await register(client)
        response = await send_big(client, "POST", path, body(1024), mode, headers)
    assert response.status_code == ok, response.text


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("POST", "/users", JSON),
        ("PATCH", "/users/me", JSON),
        ("POST", "/users/me/password", JSON),
        ("POST", "/auth/token", FORM),
    ],
    ids=["register", "patch-me", "password", "token"],
)
async def test_one_mebibyte_body_is_413_by_default(
    client: AsyncClient, token: str, method: str, path: str, headers: dict[str, str], mode: str
) -> None:
    content = b"{" + b" " * MiB + b"}"
    response = await send_big(client, method, path, content, mode, headers | bearer(token))
    assert_413(response, path)


# Query strings and path ids


@pytest.mark.parametrize(
    ("limit", "error"),
    [
        ("abc", "int_parsing"),
        ("1.5", "int_parsing"),
        ("", "int_parsing"),
        ("0", "greater_than_equal"),
        ("-1", "greater_than_equal"),
        ("101", "less_than_equal"),
        ("9" * 5000, "int_parsing_size"),
    ],
    ids=["abc", "fraction", "empty", "zero", "negative", "101", "huge"],
)
async def test_bad_limit_is_422(app: FastAPI, client: AsyncClient, limit: str, error: str) -> None:
    _, admin = await admin_token(app, client)
    response = await client.get("/users", params={"limit": limit}, headers=bearer(admin))
    assert_422(response, (["query", "limit"], error))


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


ODD_CURSORS: dict[str, str] = {
    "not-base64": "!!!",
    "nul": "\x00",
    "too-long": "a" * 5000,
    "not-json": _cursor("hello"),
    "wrong-shape": _cursor('{"a": 1}'),
    "no-offset": _cursor('["2026-01-01T00:00:00", "' + "0" * 32 + '"]'),
    "bad-uuid": _cursor('["2026-01-01T00:00:00+00:00", "xyz"]'),
    "year-1-east-of-utc": _cursor('["0001-01-01T00:00:00+14:00", "' + "0" * 32 + '"]'),
    "year-9999-west-of-utc": _cursor('["9999-12-31T23:59:59-14:00", "' + "0" * 32 + '"]'),
}


@pytest.mark.parametrize("cursor", ODD_CURSORS.values(), ids=ODD_CURSORS.keys())
async def test_odd_cursor_is_400(app: FastAPI, client: AsyncClient, cursor: str) -> None:
    _, admin = await admin_token(app, client)
    response = await client.get("/users", params={"cursor": cursor}, headers=bearer(admin))
    assert response.status_code == 400, response.text
    assert response.json() == {"detail": "Invalid cursor"}


@pytest.mark.parametrize(
    "prefix", ["\x00", "root\x00", "%", "_", "\\", "ro%", "'; DROP TABLE users; --", "é\u200b"]
)
async def test_odd_email_filter_is_answered(app: FastAPI, client: AsyncClient, prefix: str) -> None:
    _, admin = await admin_token(app, client)
    response = await client.get("/users", params={"email": prefix}, headers=bearer(admin))
    assert response.status_code == 200, response.text
    assert response.json() == {"items": [], "next_cursor": None}


async def test_email_filter_over_254_characters_is_422(app: FastAPI, client: AsyncClient) -> None:
    _, admin = await admin_token(app, client)
    response = await client.get("/users", params={"email": "a" * 255}, headers=bearer(admin))
    assert_422(response, (["query", "email"], "string_too_long"))


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
@pytest.mark.parametrize(
    "user_id", ["not-a-uuid", "1", "00000000-0000-0000-0000-00000000000g", "%00", "a" * 5000]
)
async def test_malformed_user_id_is_422(
    app: FastAPI, client: AsyncClient, method: str, user_id: str
) -> None:
    _, admin = await admin_token(app, client)
    response = await client.request(
        method, f"/users/{user_id}", json={} if method == "PATCH" else None, headers=bearer(admin)
    )
    assert_422(response, (["path", "user_id"], "uuid_parsing"))
