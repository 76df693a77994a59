"""Self-service endpoints: register, read, update, change password, delete."""

import asyncio
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient, Response
from jose import jwt

from app.config import Settings
from tests.api.helpers import (
    PASSWORD,
    assert_detail,
    assert_invalid_grant,
    assert_shape_error,
    bearer,
    login,
    register,
    token_response,
    user_token,
)

USER_KEYS = {
    "id",
    "name",
    "email",
    "email_verified",
    "role",
    "is_active",
    "created_at",
    "updated_at",
}
NEW_PASSWORD = "new-staple-lantern-9"


def new_user(
    email: str = "ann@example.com", password: str = PASSWORD, name: str = "Ann"
) -> dict[str, Any]:
    return {"name": name, "email": email, "password": password}


def assert_utc_timestamp(value: str) -> None:
    assert value.endswith(("Z", "+00:00")), value
    assert datetime.fromisoformat(value).utcoffset() == timedelta(0)


def assert_user_response(body: dict[str, Any]) -> None:
    assert set(body) == USER_KEYS
    uuid.UUID(body["id"])
    assert isinstance(body["email_verified"], bool)
    assert_utc_timestamp(body["created_at"])
    assert_utc_timestamp(body["updated_at"])


def assert_invalid_token(response: Response) -> None:
    assert_detail(response, 401)
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer")
    assert 'error="invalid_token"' in challenge


async def me(client: AsyncClient, token: str) -> Response:
    return await client.get("/users/me", headers=bearer(token))


async def patch_me(client: AsyncClient, token: str, body: object) -> Response:
    return await client.patch("/users/me", headers=bearer(token), json=body)


async def change_password(
    client: AsyncClient, token: str, current: str = PASSWORD, new: str = NEW_PASSWORD
) -> Response:
    body = {"current_password": current, "new_password": new}
    return await client.post("/users/me/password", headers=bearer(token), json=body)


# POST /users


async def test_register_returns_the_user_without_secrets(client: AsyncClient) -> None:
    response = await client.post(
        "/users", json=new_user("  Ann.Lee@Example.COM ", name="  Ann Lee  ")
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert_user_response(body)
    assert body["email"] == "ann.lee@example.com"
    assert body["name"] == "Ann Lee"
    assert body["role"] == "user"
    assert body["is_active"] is True
    assert body["email_verified"] is False  # until the mailed link is opened
    assert body["created_at"] == body["updated_at"]
    assert response.headers["Location"] == f"/users/{body['id']}"
    text = response.text.lower()
    assert PASSWORD not in response.text
    for secret_word in ("password", "hash", "$2b$"):
        assert secret_word not in text


async def test_registered_user_can_log_in_with_any_case_of_its_email(client: AsyncClient) -> None:
    user = await register(client, "bob@example.com")
    token = await login(client, "  BOB@Example.com ")
    assert (await me(client, token)).json() == user


@pytest.mark.parametrize(
    "email",
    ["", "   ", "not-an-email", "a@b", "@example.com", "ann@", "ann@@example.com",
     "ann example@example.com", f"{'a' * 65}@x.io",
     f"{'a' * 64}@{'b' * 63}.{'c' * 63}.{'d' * 63}.io"],
)  # fmt: skip
async def test_register_refuses_bad_email(client: AsyncClient, email: str) -> None:
    response = await client.post("/users", json=new_user(email))
    assert_detail(response, 400)


@pytest.mark.parametrize(
    "password",
    ["short1!", "password123", "PASSWORD123", "qwertyuiop", "€" * 25, "a" * 73],
    ids=["too-short", "common", "common-upper", "common-keyboard", "euro-75-bytes", "73-bytes"],
)
async def test_register_refuses_weak_password(client: AsyncClient, password: str) -> None:
    response = await client.post("/users", json=new_user("weak@example.com", password))
    assert_detail(response, 400)
    assert password not in response.text


async def test_register_accepts_a_password_of_exactly_72_bytes(client: AsyncClient) -> None:
    password = "€" * 24  # 72 bytes in UTF-8
    await register(client, "euro@example.com", password)
    await login(client, "euro@example.com", password)


async def test_register_refuses_password_equal_to_email(client: AsyncClient) -> None:
    response = await client.post(
        "/users", json=new_user("Same.As.Mail@example.com", "SAME.AS.MAIL@EXAMPLE.COM")
    )
    assert_detail(response, 400)


@pytest.mark.parametrize("name", ["", "   ", "\t\n", "x" * 101, "é" * 101])
async def test_register_refuses_bad_name(client: AsyncClient, name: str) -> None:
    response = await client.post("/users", json=new_user("name@example.com", name=name))
    assert_detail(response, 400)


async def test_register_accepts_a_name_of_100_code_points(client: AsyncClient) -> None:
    name = "é" * 100  # 200 bytes in UTF-8: the limit counts code points
    user = await register(client, "long.name@example.com", name=f"  {name}  ")
    assert user["name"] == name


@pytest.mark.parametrize("email", ["dup@example.com", "DUP@Example.com", "  dup@example.com  "])
async def test_register_refuses_a_taken_email(client: AsyncClient, email: str) -> None:
    await register(client, "dup@example.com")
    response = await client.post("/users", json=new_user(email, "other-long-secret-7"))
    assert response.status_code == 409
    assert response.json() == {"detail": "User already exists"}


async def test_simultaneous_registrations_of_one_email_give_one_conflict(
    client: AsyncClient,
) -> None:
    for attempt in range(4):
        body = new_user(f"race{attempt}@example.com")
        responses = await asyncio.gather(
            client.post("/users", json=body), client.post("/users", json=body)
        )
        assert sorted(r.status_code for r in responses) == [201, 409], [r.text for r in responses]
        conflict = next(r for r in responses if r.status_code == 409)
        assert conflict.json() == {"detail": "User already exists"}


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Ann", "password": PASSWORD},
        {"email": "shape@example.com", "password": PASSWORD},
        {"name": "Ann", "email": "shape@example.com"},
        {**new_user("shape@example.com"), "role": "admin"},
        {**new_user("shape@example.com"), "is_active": False},
        {**new_user("shape@example.com"), "name": 123},
        {**new_user("shape@example.com"), "email": ["shape@example.com"]},
        {**new_user("shape@example.com"), "name": None},
        {**new_user("shape@example.com"), "password": "p" * 5000},
        [new_user("shape@example.com")],
        "just a string",
    ],
    ids=["no-email", "no-name", "no-password", "role", "is_active", "int-name", "list-email",
         "null-name", "huge-password", "array-body", "string-body"],
)  # fmt: skip
async def test_register_refuses_bad_shapes(client: AsyncClient, body: object) -> None:
    response = await client.post("/users", json=body)
    assert_shape_error(response, PASSWORD, "p" * 100)
    assert (await token_response(client, "shape@example.com")).status_code == 400


async def post_raw(client: AsyncClient, content: bytes) -> Response:
    headers = {"Content-Type": "application/json"}
    return await client.post("/users", content=content, headers=headers)


@pytest.mark.parametrize("content", [b"", b"not json", b'{"name": "Ann",'], ids=repr)
async def test_register_refuses_a_body_that_is_not_json(
    client: AsyncClient, content: bytes
) -> None:
    assert_shape_error(await post_raw(client, content))


async def test_register_refuses_invalid_utf8_without_failing(client: AsyncClient) -> None:
    # The contract allows 400 or 422 here; it only must not be a 5xx.
    response = await post_raw(client, b'{"name": "\xff\xfe"}')
    assert response.status_code in (400, 422), response.text
    assert set(response.json()) == {"detail"}


async def test_register_refuses_a_form_body(client: AsyncClient) -> None:
    response = await client.post("/users", data=new_user("form@example.com"))
    assert_shape_error(response, PASSWORD)


# GET /users/me


async def test_me_returns_the_current_user(client: AsyncClient) -> None:
    user, token = await user_token(client, "me@example.com")
    response = await me(client, token)
    assert response.status_code == 200
    assert response.json() == user
    assert_user_response(response.json())


async def test_me_without_token_is_401_with_bearer_challenge(client: AsyncClient) -> None:
    response = await client.get("/users/me")
    assert_detail(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_me_with_a_garbage_token_is_invalid_token(client: AsyncClient) -> None:
    assert_invalid_token(await me(client, "not.a.jwt"))


# PATCH /users/me


async def test_update_me_changes_name_trimmed(client: AsyncClient) -> None:
    user, token = await user_token(client, "rename@example.com")

    response = await patch_me(client, token, {"name": "  Annabel  "})

    assert response.status_code == 200, response.text
    body = response.json()
    assert_user_response(body)
    assert body == {**user, "name": "Annabel", "updated_at": body["updated_at"]}
    assert body["updated_at"] >= user["updated_at"]
    assert (await me(client, token)).json() == body


async def test_update_me_changes_email_normalised(client: AsyncClient) -> None:
    user, token = await user_token(client, "old.mail@example.com")

    response = await patch_me(client, token, {"email": "  New.Mail@EXAMPLE.com "})

    assert response.status_code == 200, response.text
    assert response.json()["email"] == "new.mail@example.com"
    assert response.json()["id"] == user["id"]
    assert (await me(client, token)).json()["email"] == "new.mail@example.com"
    await login(client, "new.mail@example.com")
    await assert_invalid_grant(client, "old.mail@example.com", PASSWORD)


async def test_update_me_to_own_email_in_another_case_is_not_a_conflict(
    client: AsyncClient,
) -> None:
    user, token = await user_token(client, "own@example.com")
    response = await patch_me(client, token, {"email": "OWN@example.com"})
    assert response.status_code == 200, response.text
    assert response.json() == user


@pytest.mark.parametrize(
    "body", [{}, {"name": None}, {"email": None}, {"name": None, "email": None}]
)
async def test_update_me_with_nothing_to_change_changes_nothing(
    client: AsyncClient, body: dict[str, Any]
) -> None:
    user, token = await user_token(client, "nothing@example.com")

    response = await patch_me(client, token, body)

    assert response.status_code == 200, response.text
    assert response.json() == user
    assert (await me(client, token)).json() == user


async def test_update_me_refuses_an_email_taken_by_another_user(client: AsyncClient) -> None:
    await register(client, "taken@example.com")
    user, token = await user_token(client, "taker@example.com")

    response = await patch_me(client, token, {"email": "Taken@Example.com"})

    assert response.status_code == 409
    assert response.json() == {"detail": "User already exists"}
    assert (await me(client, token)).json() == user


@pytest.mark.parametrize(
    "body", [{"email": "not-an-email"}, {"email": "  "}, {"name": ""}, {"name": "x" * 101}]
)
async def test_update_me_refuses_values_that_break_domain_rules(
    client: AsyncClient, body: dict[str, Any]
) -> None:
    user, token = await user_token(client, "rules@example.com")
    assert_detail(await patch_me(client, token, body), 400)
    assert (await me(client, token)).json() == user


@pytest.mark.parametrize(
    "body",
    [
        {"role": "admin"},
        {"name": "Ann", "role": "admin"},
        {"is_active": False},
        {"password": NEW_PASSWORD},
        {"name": 5},
        ["name"],
    ],
)
async def test_update_me_refuses_bad_shapes_and_cannot_promote_itself(
    client: AsyncClient, body: object
) -> None:
    user, token = await user_token(client, "climber@example.com")

    assert_shape_error(await patch_me(client, token, body), NEW_PASSWORD)

    assert (await me(client, token)).json() == user
    assert (await client.get("/users", headers=bearer(token))).status_code == 403


async def test_update_me_without_token_is_401(client: AsyncClient) -> None:
    response = await client.patch("/users/me", json={"name": "Nobody"})
    assert_detail(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"


# POST /users/me/password


async def test_change_password_revokes_earlier_tokens(client: AsyncClient) -> None:
    _, old_token = await user_token(client, "pw@example.com")

    response = await change_password(client, old_token)

    assert response.status_code == 204
    assert response.content == b""
    assert_invalid_token(await me(client, old_token))
    await assert_invalid_grant(client, "pw@example.com", PASSWORD)
    new_token = await login(client, "pw@example.com", NEW_PASSWORD)
    assert (await me(client, new_token)).status_code == 200


async def test_change_password_spares_tokens_issued_in_the_same_second(
    client: AsyncClient,
) -> None:
    await register(client, "same.second@example.com")
    await asyncio.sleep(1.02 - time.time() % 1)  # start of a second: all below fits in it
    before = await login(client, "same.second@example.com")

    assert (await change_password(client, before)).status_code == 204
    after = await login(client, "same.second@example.com", NEW_PASSWORD)

    iat_before = jwt.get_unverified_claims(before)["iat"]
    assert jwt.get_unverified_claims(after)["iat"] == iat_before, "not within one second"
    assert_invalid_token(await me(client, before))
    assert (await me(client, after)).status_code == 200


async def test_token_after_a_change_can_change_the_password_again(client: AsyncClient) -> None:
    _, token = await user_token(client, "twice@example.com")
    assert (await change_password(client, token)).status_code == 204
    token = await login(client, "twice@example.com", NEW_PASSWORD)

    response = await change_password(client, token, NEW_PASSWORD, "third-quiet-harbour-5")

    assert response.status_code == 204

    assert_invalid_token(await me(client, token))
    await login(client, "twice@example.com", "third-quiet-harbour-5")


async def test_change_password_refuses_a_wrong_current_password(client: AsyncClient) -> None:
    _, token = await user_token(client, "wrong.current@example.com")

    response = await change_password(client, token, current="not-my-password-1")

    assert_detail(response, 400)
    assert (await me(client, token)).status_code == 200
    await login(client, "wrong.current@example.com")
    await assert_invalid_grant(client, "wrong.current@example.com", NEW_PASSWORD)


@pytest.mark.parametrize(
    "new",
    ["short1!", "password123", "€" * 25, "Weak.New@Example.com", PASSWORD],
    ids=["too-short", "common", "over-72-bytes", "the-email", "same-as-current"],
)
async def test_change_password_refuses_a_weak_new_password(client: AsyncClient, new: str) -> None:
    _, token = await user_token(client, "weak.new@example.com")

    assert_detail(await change_password(client, token, new=new), 400)

    assert (await me(client, token)).status_code == 200
    await login(client, "weak.new@example.com")


@pytest.mark.parametrize(
    "body",
    [
        {"current_password": PASSWORD},
        {"new_password": NEW_PASSWORD},
        {},
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "extra": 1},
        {"current_password": PASSWORD, "new_password": 12345678},
    ],
    ids=["no-new", "no-current", "empty", "unknown-field", "int-new"],
)
async def test_change_password_refuses_bad_shapes(
    client: AsyncClient, body: dict[str, Any]
) -> None:
    _, token = await user_token(client, "pw.shape@example.com")

    response = await client.post("/users/me/password", headers=bearer(token), json=body)

    assert_shape_error(response, PASSWORD, NEW_PASSWORD)
    assert (await me(client, token)).status_code == 200


async def test_change_password_without_token_is_401(client: AsyncClient) -> None:
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    response = await client.post("/users/me/password", json=body)
    assert_detail(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"


# DELETE /users/me


async def test_delete_me_removes_the_account(client: AsyncClient) -> None:
    user, token = await user_token(client, "leaver@example.com")

    response = await client.delete("/users/me", headers=bearer(token))

    assert response.status_code == 204
    assert response.content == b""
    assert_invalid_token(await me(client, token))
    await assert_invalid_grant(client, "leaver@example.com", PASSWORD)
    again = await register(client, "Leaver@Example.com")
    assert again["id"] != user["id"]
    assert again["email"] == "leaver@example.com"


async def test_delete_me_twice_with_the_same_token_is_401(client: AsyncClient) -> None:
    _, token = await user_token(client, "twice.gone@example.com")
    assert (await client.delete("/users/me", headers=bearer(token))).status_code == 204
    assert_invalid_token(await client.delete("/users/me", headers=bearer(token)))


async def test_delete_me_without_token_is_401(client: AsyncClient) -> None:
    response = await client.delete("/users/me")
    assert_detail(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"


# Guessing the current password (a stolen token must not become a takeover)


async def test_wrong_current_passwords_lock_the_change_and_the_login(
    client: AsyncClient, settings: Settings
) -> None:
    _, token = await user_token(client)
    for _ in range(settings.LOGIN_MAX_FAILURES):
        assert_detail(await change_password(client, token, current="a-wrong-guess-1"), 400)

    locked = await change_password(client, token)  # the right one, once locked
    assert_detail(locked, 429)
    assert 1 <= int(locked.headers["Retry-After"]) <= settings.LOGIN_LOCKOUT_SECONDS
    login_attempt = await token_response(client, "ann@example.com")
    assert login_attempt.status_code == 429
    assert login_attempt.json()["error"] == "temporarily_unavailable"
    # Nothing changed: the token still works, the old password is still the one.
    assert (await client.get("/users/me", headers=bearer(token))).status_code == 200


async def test_a_burst_of_wrong_current_passwords_checks_at_most_the_limit(
    client: AsyncClient, settings: Settings
) -> None:
    _, token = await user_token(client)
    responses = await asyncio.gather(
        *(change_password(client, token, current=f"a-wrong-guess-{i}") for i in range(30))
    )
    statuses = [r.status_code for r in responses]
    assert statuses.count(400) == settings.LOGIN_MAX_FAILURES, statuses
    assert statuses.count(429) == 30 - settings.LOGIN_MAX_FAILURES, statuses
