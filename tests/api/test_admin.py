"""Admin endpoints: list, read, change and delete any user; the last active admin stays."""

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response

from app.core.dtos import UserDTO
from app.core.usecases.admin_update_user import AdminUpdateUser
from app.core.usecases.delete_user import DeleteUser
from app.core.value_objects import ID
from app.infra.api.dependencies import get_clock
from app.infra.db.repositories.user_repo import SqlUserRepo
from tests.api.helpers import (
    admin_token,
    assert_detail,
    assert_invalid_grant,
    assert_shape_error,
    bearer,
    login,
    register,
    user_token,
)

FORBIDDEN = {"detail": "Not enough permissions"}
NOT_FOUND = {"detail": "User not found"}
TAKEN = {"detail": "User already exists"}
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


class FrozenClock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment


def assert_unauthenticated(response: Response) -> None:
    assert_detail(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def list_users(client: AsyncClient, token: str, **params: str | int) -> Response:
    return await client.get("/users", headers=bearer(token), params=params)


async def all_users(client: AsyncClient, token: str) -> list[dict[str, Any]]:
    response = await list_users(client, token, limit=100)
    assert response.status_code == 200, response.text
    assert response.json()["next_cursor"] is None
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def get_user(client: AsyncClient, token: str, user_id: str) -> Response:
    return await client.get(f"/users/{user_id}", headers=bearer(token))


async def patch_user(client: AsyncClient, token: str, user_id: str, body: object) -> Response:
    return await client.patch(f"/users/{user_id}", headers=bearer(token), json=body)


async def delete_user(client: AsyncClient, token: str, user_id: str) -> Response:
    return await client.delete(f"/users/{user_id}", headers=bearer(token))


async def register_many(client: AsyncClient, count: int, domain: str) -> list[dict[str, Any]]:
    return [await register(client, f"user{i:03}@{domain}") for i in range(count)]


@asynccontextmanager
async def racing_client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    """A client that sees an unhandled error as the 500 a real client would get."""
    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def order_key(user: dict[str, Any]) -> tuple[datetime, uuid.UUID]:
    return datetime.fromisoformat(user["created_at"]), uuid.UUID(user["id"])


async def page_through(client: AsyncClient, token: str, limit: int) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    params: dict[str, str | int] = {"limit": limit}
    for _ in range(1000):
        response = await list_users(client, token, **params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "next_cursor"}
        assert len(page["items"]) <= limit
        seen += page["items"]
        if page["next_cursor"] is None:
            return seen
        assert isinstance(page["next_cursor"], str)
        assert page["next_cursor"]
        assert len(page["items"]) == limit
        params["cursor"] = page["next_cursor"]
    raise AssertionError("next_cursor never became null")


def encode_cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


# GET /users


async def test_list_users_needs_a_token(client: AsyncClient) -> None:
    response = await client.get("/users")
    assert_unauthenticated(response)
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_list_users_is_forbidden_to_a_normal_user(client: AsyncClient) -> None:
    _, token = await user_token(client, "plain@example.com")
    response = await list_users(client, token)
    assert response.status_code == 403
    assert response.json() == FORBIDDEN


async def test_list_users_in_ascending_created_at_then_id(
    app: FastAPI, client: AsyncClient
) -> None:
    _, token = await admin_token(app, client, "root.order@example.com")
    created = await register_many(client, 5, "order.io")

    items = await all_users(client, token)

    assert [u["email"] for u in items] == ["root.order@example.com"] + [u["email"] for u in created]
    assert items == sorted(items, key=order_key)
    assert items[1:] == created


async def test_users_created_in_the_same_instant_are_ordered_and_paged_by_id(
    app: FastAPI, client: AsyncClient
) -> None:
    _, token = await admin_token(app, client, "root.ties@example.com")
    clock = FrozenClock(datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC))
    app.dependency_overrides[get_clock] = lambda: clock
    try:
        created = await register_many(client, 6, "ties.io")
    finally:
        app.dependency_overrides.pop(get_clock)

    assert {u["created_at"] for u in created} == {"2030-01-02T03:04:05.678901Z"}
    items = await all_users(client, token)
    assert items[1:] == sorted(created, key=lambda u: uuid.UUID(u["id"]))
    assert await page_through(client, token, limit=2) == items


@pytest.mark.parametrize("limit", [1, 3, 4, 8, 9, 100])
async def test_paging_visits_every_user_once(app: FastAPI, client: AsyncClient, limit: int) -> None:
    _, token = await admin_token(app, client, "root.pages@example.com")
    await register_many(client, 7, "pages.io")

    seen = await page_through(client, token, limit)

    assert seen == await all_users(client, token)
    assert len({u["id"] for u in seen}) == 8


async def test_default_limit_is_50(app: FastAPI, client: AsyncClient) -> None:
    _, token = await admin_token(app, client, "root.default@example.com")
    await register_many(client, 50, "default.io")

    response = await list_users(client, token)

    assert response.status_code == 200
    page = response.json()
    assert len(page["items"]) == 50
    assert page["next_cursor"] is not None
    rest = await list_users(client, token, cursor=page["next_cursor"])
    assert [u["email"] for u in rest.json()["items"]] == ["user049@default.io"]
    assert rest.json()["next_cursor"] is None


@pytest.mark.parametrize("limit", [1, 2, 50, 99, 100])
async def test_limits_from_1_to_100_are_accepted(
    app: FastAPI, client: AsyncClient, limit: int
) -> None:
    _, token = await admin_token(app, client, "root.limit@example.com")
    await register(client, "limit@example.com")

    response = await list_users(client, token, limit=limit)

    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == min(limit, 2)
    assert (response.json()["next_cursor"] is None) == (limit >= 2)


@pytest.mark.parametrize("limit", ["0", "101", "-1", "x", "1.5", ""])
async def test_limits_out_of_range_or_not_integers_are_422(
    app: FastAPI, client: AsyncClient, limit: str
) -> None:
    _, token = await admin_token(app, client, "root.badlimit@example.com")
    assert_shape_error(await list_users(client, token, limit=limit))


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!!",
        "x",
        encode_cursor(b"{not json"),
        encode_cursor(b'{"a": 1}'),
        encode_cursor(b'["2024-01-01T00:00:00+00:00", 5]'),
        encode_cursor(b'["2024-01-01T00:00:00+00:00"]'),
        encode_cursor(b'["not a date", "00000000000040008000000000000000"]'),
        encode_cursor(b'["2024-01-01T00:00:00", "00000000000040008000000000000000"]'),
        encode_cursor(b'["2024-01-01T00:00:00+00:00", "not-hex"]'),
        encode_cursor(b"\xff\xfe"),
        "A" * 5000,
    ],
    ids=["garbage", "short", "junk-json", "object", "int-id", "one-item", "bad-date",
         "naive-date", "bad-id", "not-utf8", "huge"],
)  # fmt: skip
async def test_bad_cursors_are_400(app: FastAPI, client: AsyncClient, cursor: str) -> None:
    _, token = await admin_token(app, client, "root.cursor@example.com")
    assert_detail(await list_users(client, token, cursor=cursor), 400)


async def test_email_filter_is_a_case_insensitive_literal_prefix(
    app: FastAPI, client: AsyncClient
) -> None:
    _, token = await admin_token(app, client, "root.filter@example.com")
    for email in ["a_b@x.io", "axb@x.io", "100%@x.io", "1000@x.io", "ab@x.io"]:
        await register(client, email)

    async def emails(prefix: str) -> list[str]:
        response = await list_users(client, token, email=prefix)
        assert response.status_code == 200, response.text
        assert response.json()["next_cursor"] is None
        return [u["email"] for u in response.json()["items"]]

    assert await emails("a_") == ["a_b@x.io"]
    assert await emails("A_B") == ["a_b@x.io"]
    assert await emails("100%") == ["100%@x.io"]
    assert await emails("%") == []
    assert await emails("_") == []
    assert await emails("AX") == ["axb@x.io"]
    assert await emails("a") == ["a_b@x.io", "axb@x.io", "ab@x.io"]
    assert await emails("1") == ["100%@x.io", "1000@x.io"]
    assert await emails("ROOT.FILTER@EXAMPLE.COM") == ["root.filter@example.com"]
    assert await emails("nobody") == []


async def test_email_filter_pages_with_its_cursor(app: FastAPI, client: AsyncClient) -> None:
    _, token = await admin_token(app, client, "root.filterpage@example.com")
    for i in range(3):
        await register(client, f"keep{i}@x.io")
        await register(client, f"skip{i}@x.io")

    first = await list_users(client, token, email="KEEP", limit=2)
    second = await list_users(
        client, token, email="KEEP", limit=2, cursor=first.json()["next_cursor"]
    )

    assert [u["email"] for u in first.json()["items"]] == ["keep0@x.io", "keep1@x.io"]
    assert [u["email"] for u in second.json()["items"]] == ["keep2@x.io"]
    assert second.json()["next_cursor"] is None


# GET /users/{id}


async def test_admin_reads_any_user(app: FastAPI, client: AsyncClient) -> None:
    admin_id, token = await admin_token(app, client, "root.read@example.com")
    user = await register(client, "readable@example.com")

    response = await get_user(client, token, user["id"])
    assert response.status_code == 200
    assert response.json() == user

    own = await get_user(client, token, admin_id)
    assert own.status_code == 200
    assert own.json()["role"] == "admin"


async def test_user_reads_itself(client: AsyncClient) -> None:
    user, token = await user_token(client, "self.read@example.com")
    response = await get_user(client, token, user["id"])
    assert response.status_code == 200
    assert response.json() == user


@pytest.mark.parametrize("existing", [True, False], ids=["existing", "unknown"])
async def test_user_cannot_read_another_id_existing_or_not(
    client: AsyncClient, existing: bool
) -> None:
    other = await register(client, "other.read@example.com")
    _, token = await user_token(client, "nosy@example.com")

    response = await get_user(client, token, other["id"] if existing else UNKNOWN_ID)

    assert response.status_code == 403
    assert response.json() == FORBIDDEN


async def test_admin_reading_an_unknown_id_is_404(app: FastAPI, client: AsyncClient) -> None:
    _, token = await admin_token(app, client, "root.unknown@example.com")
    response = await get_user(client, token, UNKNOWN_ID)
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize("user_id", ["not-a-uuid", "123", "00000000-0000-4000-8000-00000000000"])
async def test_malformed_id_is_422(app: FastAPI, client: AsyncClient, user_id: str) -> None:
    _, token = await admin_token(app, client, "root.malformed@example.com")
    assert_shape_error(await get_user(client, token, user_id))
    assert_shape_error(await patch_user(client, token, user_id, {"name": "X"}))
    assert_shape_error(await delete_user(client, token, user_id))


async def test_reading_a_user_needs_a_token(client: AsyncClient) -> None:
    user = await register(client, "anon.read@example.com")
    assert_unauthenticated(await client.get(f"/users/{user['id']}"))


# PATCH /users/{id}


async def test_admin_changes_every_field(app: FastAPI, client: AsyncClient) -> None:
    _, token = await admin_token(app, client, "root.patch@example.com")
    user = await register(client, "patched@example.com")
    body = {"name": "  Patched  ", "email": " New.Patched@Example.COM", "role": "admin",
            "is_active": False}  # fmt: skip

    response = await patch_user(client, token, user["id"], body)

    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed == {
        **user,
        "name": "Patched",
        "email": "new.patched@example.com",
        "role": "admin",
        "is_active": False,
        "updated_at": changed["updated_at"],
    }
    assert changed["updated_at"] >= user["updated_at"]
    assert (await get_user(client, token, user["id"])).json() == changed


@pytest.mark.parametrize(
    "body", [{}, {"name": None, "email": None, "role": None, "is_active": None}]
)
async def test_admin_patch_with_nothing_to_change_changes_nothing(
    app: FastAPI, client: AsyncClient, body: dict[str, Any]
) -> None:
    _, token = await admin_token(app, client, "root.noop@example.com")
    user = await register(client, "untouched@example.com")

    response = await patch_user(client, token, user["id"], body)

    assert response.status_code == 200, response.text
    assert response.json() == user


async def test_promotion_applies_to_tokens_already_issued(
    app: FastAPI, client: AsyncClient
) -> None:
    _, admin = await admin_token(app, client, "root.promote@example.com")
    user, token = await user_token(client, "promoted@example.com")
    assert (await list_users(client, token)).status_code == 403

    assert (await patch_user(client, admin, user["id"], {"role": "admin"})).status_code == 200

    assert (await list_users(client, token)).status_code == 200
    assert (await patch_user(client, admin, user["id"], {"role": "user"})).status_code == 200
    assert_unauthenticated(await list_users(client, token))  # a demotion ends its tokens
    fresh = await login(client, "promoted@example.com")
    assert (await list_users(client, fresh)).json() == FORBIDDEN


async def test_deactivation_revokes_tokens_and_login_until_reactivated(
    app: FastAPI, client: AsyncClient
) -> None:
    _, admin = await admin_token(app, client, "root.deactivate@example.com")
    user, token = await user_token(client, "sleeper@example.com")

    response = await patch_user(client, admin, user["id"], {"is_active": False})

    assert response.status_code == 200
    assert response.json()["is_active"] is False
    revoked = await client.get("/users/me", headers=bearer(token))
    assert_unauthenticated(revoked)
    assert 'error="invalid_token"' in revoked.headers["WWW-Authenticate"]
    await assert_invalid_grant(client, "sleeper@example.com")

    assert (await patch_user(client, admin, user["id"], {"is_active": True})).status_code == 200
    # Deactivation ended the old token for good: reactivation does not bring it back.
    assert_unauthenticated(await client.get("/users/me", headers=bearer(token)))
    fresh = await login(client, "sleeper@example.com")
    assert (await client.get("/users/me", headers=bearer(fresh))).json()["is_active"] is True


async def test_admin_cannot_take_an_email_in_use(app: FastAPI, client: AsyncClient) -> None:
    _, token = await admin_token(app, client, "root.taken@example.com")
    await register(client, "holder@example.com")
    user = await register(client, "wanter@example.com")

    response = await patch_user(client, token, user["id"], {"email": "HOLDER@example.com"})

    assert response.status_code == 409
    assert response.json() == TAKEN
    assert (await get_user(client, token, user["id"])).json() == user


async def test_admin_patching_an_unknown_id_is_404(app: FastAPI, client: AsyncClient) -> None:
    _, token = await admin_token(app, client, "root.patch404@example.com")
    response = await patch_user(client, token, UNKNOWN_ID, {"name": "Ghost"})
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize("target", ["itself", "other"])
async def test_non_admin_cannot_patch_by_id(client: AsyncClient, target: str) -> None:
    other = await register(client, "patch.victim@example.com")
    user, token = await user_token(client, "patch.nosy@example.com")
    victim = user if target == "itself" else other

    response = await patch_user(client, token, victim["id"], {"role": "admin", "name": "Pwned"})

    assert response.status_code == 403
    assert response.json() == FORBIDDEN
    assert (await client.get("/users/me", headers=bearer(token))).json() == user


@pytest.mark.parametrize(
    "body",
    [{"role": "superuser"}, {"role": "ADMIN"}, {"is_active": "true"}, {"is_active": 1},
     {"name": 7}, {"password": "whatever-long-1"}, {"id": UNKNOWN_ID}],
)  # fmt: skip
async def test_admin_patch_refuses_bad_shapes(
    app: FastAPI, client: AsyncClient, body: dict[str, Any]
) -> None:
    _, token = await admin_token(app, client, "root.patchshape@example.com")
    user = await register(client, "shape.target@example.com")

    assert_shape_error(await patch_user(client, token, user["id"], body))
    assert (await get_user(client, token, user["id"])).json() == user


@pytest.mark.parametrize("body", [{"email": "not-an-email"}, {"name": "  "}, {"name": "x" * 101}])
async def test_admin_patch_refuses_values_that_break_domain_rules(
    app: FastAPI, client: AsyncClient, body: dict[str, Any]
) -> None:
    _, token = await admin_token(app, client, "root.patchrule@example.com")
    user = await register(client, "rule.target@example.com")

    assert_detail(await patch_user(client, token, user["id"], body), 400)
    assert (await get_user(client, token, user["id"])).json() == user


async def test_patching_a_user_needs_a_token(client: AsyncClient) -> None:
    user = await register(client, "anon.patch@example.com")
    assert_unauthenticated(await client.patch(f"/users/{user['id']}", json={"name": "X"}))


# DELETE /users/{id}


async def test_admin_deletes_a_user(app: FastAPI, client: AsyncClient) -> None:
    _, admin = await admin_token(app, client, "root.delete@example.com")
    user, token = await user_token(client, "doomed@example.com")

    response = await delete_user(client, admin, user["id"])

    assert response.status_code == 204
    assert response.content == b""
    assert (await get_user(client, admin, user["id"])).json() == NOT_FOUND
    assert (await delete_user(client, admin, user["id"])).status_code == 404
    assert_unauthenticated(await client.get("/users/me", headers=bearer(token)))
    await assert_invalid_grant(client, "doomed@example.com")


async def test_user_deletes_itself_by_id(app: FastAPI, client: AsyncClient) -> None:
    _, admin = await admin_token(app, client, "root.selfdelete@example.com")
    user, token = await user_token(client, "self.delete@example.com")

    assert (await delete_user(client, token, user["id"])).status_code == 204

    assert_unauthenticated(await client.get("/users/me", headers=bearer(token)))
    assert (await get_user(client, admin, user["id"])).status_code == 404


@pytest.mark.parametrize("existing", [True, False], ids=["existing", "unknown"])
async def test_user_cannot_delete_another_id_existing_or_not(
    app: FastAPI, client: AsyncClient, existing: bool
) -> None:
    _, admin = await admin_token(app, client, "root.keep@example.com")
    other = await register(client, "kept@example.com")
    _, token = await user_token(client, "vandal@example.com")

    response = await delete_user(client, token, other["id"] if existing else UNKNOWN_ID)

    assert response.status_code == 403
    assert response.json() == FORBIDDEN
    assert (await get_user(client, admin, other["id"])).json() == other


async def test_admin_deleting_an_unknown_id_is_404(app: FastAPI, client: AsyncClient) -> None:
    _, token = await admin_token(app, client, "root.delete404@example.com")
    response = await delete_user(client, token, UNKNOWN_ID)
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


async def test_admin_deletes_another_admin(app: FastAPI, client: AsyncClient) -> None:
    _, first = await admin_token(app, client, "root.deleter@example.com")
    second_id, second = await admin_token(app, client, "root.deleted@example.com")

    assert (await delete_user(client, first, second_id)).status_code == 204

    assert_unauthenticated(await list_users(client, second))
    assert [u["email"] for u in await all_users(client, first)] == ["root.deleter@example.com"]


async def test_deleting_a_user_needs_a_token(client: AsyncClient) -> None:
    user = await register(client, "anon.delete@example.com")
    assert_unauthenticated(await client.delete(f"/users/{user['id']}"))


# The last active admin


async def assert_unchanged_admin(client: AsyncClient, token: str, admin_id: str) -> None:
    response = await get_user(client, token, admin_id)
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "admin"
    assert response.json()["is_active"] is True
    assert (await list_users(client, token)).status_code == 200


@pytest.mark.parametrize(
    "body",
    [{"role": "user"}, {"is_active": False}, {"role": "user", "is_active": False},
     {"name": "Still Root", "role": "user"}],
)  # fmt: skip
async def test_last_active_admin_cannot_demote_or_deactivate_itself(
    app: FastAPI, client: AsyncClient, body: dict[str, Any]
) -> None:
    admin_id, token = await admin_token(app, client, "root.last@example.com")
    before = (await get_user(client, token, admin_id)).json()

    response = await patch_user(client, token, admin_id, body)

    assert_detail(response, 409)
    assert (await get_user(client, token, admin_id)).json() == before
    await assert_unchanged_admin(client, token, admin_id)


@pytest.mark.parametrize("path", ["id", "me"])
async def test_last_active_admin_cannot_delete_itself(
    app: FastAPI, client: AsyncClient, path: str
) -> None:
    admin_id, token = await admin_token(app, client, "root.stay@example.com")

    url = f"/users/{admin_id}" if path == "id" else "/users/me"
    assert_detail(await client.delete(url, headers=bearer(token)), 409)

    await assert_unchanged_admin(client, token, admin_id)
    await login(client, "root.stay@example.com")


async def test_an_inactive_admin_does_not_count_as_another_admin(
    app: FastAPI, client: AsyncClient
) -> None:
    admin_id, token = await admin_token(app, client, "root.active@example.com")
    other_id, _ = await admin_token(app, client, "root.inactive@example.com")
    assert (await patch_user(client, token, other_id, {"is_active": False})).status_code == 200

    assert_detail(await patch_user(client, token, admin_id, {"role": "user"}), 409)
    assert_detail(await delete_user(client, token, admin_id), 409)
    await assert_unchanged_admin(client, token, admin_id)


async def test_with_two_admins_one_can_demote_the_other(app: FastAPI, client: AsyncClient) -> None:
    first_id, first = await admin_token(app, client, "root.first@example.com")
    second_id, second = await admin_token(app, client, "root.second@example.com")

    response = await patch_user(client, first, second_id, {"role": "user"})

    assert response.status_code == 200, response.text
    assert response.json()["role"] == "user"
    assert_unauthenticated(await list_users(client, second))  # a demotion ends its tokens
    fresh = await login(client, "root.second@example.com")
    assert (await list_users(client, fresh)).json() == FORBIDDEN
    assert_detail(await patch_user(client, first, first_id, {"role": "user"}), 409)


async def test_with_two_admins_one_can_demote_itself(app: FastAPI, client: AsyncClient) -> None:
    first_id, first = await admin_token(app, client, "root.stepdown@example.com")
    second_id, second = await admin_token(app, client, "root.remain@example.com")

    assert (await patch_user(client, first, first_id, {"role": "user"})).status_code == 200

    assert_unauthenticated(await list_users(client, first))  # a demotion ends its tokens
    fresh = await login(client, "root.stepdown@example.com")
    assert (await list_users(client, fresh)).json() == FORBIDDEN
    await assert_unchanged_admin(client, second, second_id)


def widen_the_race(monkeypatch: pytest.MonkeyPatch) -> None:
    """Holds both requests inside their transactions at once. When the target
    row was locked before the active admins, this deadlocked on PostgreSQL."""
    lock_active_admins = SqlUserRepo.lock_active_admins

    async def slow_lock(self: SqlUserRepo) -> list[ID]:
        await asyncio.sleep(0.2)
        return await lock_active_admins(self)

    monkeypatch.setattr(SqlUserRepo, "lock_active_admins", slow_lock)


async def race_to_demote_each_other(app: FastAPI, client: AsyncClient) -> None:
    a_id, a = await admin_token(app, client, "root.a@example.com")
    b_id, b = await admin_token(app, client, "root.b@example.com")

    async with racing_client(app) as racer:
        responses = await asyncio.gather(
            patch_user(racer, a, b_id, {"role": "user"}),
            patch_user(racer, b, a_id, {"role": "user"}),
        )

    # The loser is decided inside its transaction: 403 when it finds itself
    # demoted, or 401 when the demotion had already ended its token (a 409
    # would mean both saw two admins).
    statuses = sorted(r.status_code for r in responses)
    assert statuses in ([200, 401], [200, 403]), [r.text for r in responses]
    survivor = a if responses[0].status_code == 200 else b
    admins = [u for u in await all_users(client, survivor) if u["role"] == "admin"]
    assert len(admins) == 1


async def race_to_delete_each_other(app: FastAPI, client: AsyncClient) -> None:
    a_id, a = await admin_token(app, client, "root.c@example.com")
    b_id, b = await admin_token(app, client, "root.d@example.com")

    async with racing_client(app) as racer:
        responses = await asyncio.gather(delete_user(racer, a, b_id), delete_user(racer, b, a_id))

    # The loser finds itself deleted, inside its transaction or when its token
    # is resolved: 401 either way (a 409 would mean both saw two admins).
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [204, 401], [r.text for r in responses]
    survivor = a if responses[0].status_code == 204 else b
    assert [u["role"] for u in await all_users(client, survivor)] == ["admin"]


@pytest.mark.parametrize("attempt", range(3))  # a race: try it more than once
async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    app: FastAPI, client: AsyncClient, attempt: int
) -> None:
    await race_to_demote_each_other(app, client)


async def test_two_admins_demoting_each_other_with_overlapping_locks(
    app: FastAPI, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    widen_the_race(monkeypatch)
    await race_to_demote_each_other(app, client)


@pytest.mark.parametrize("attempt", range(3))  # a race: try it more than once
async def test_two_admins_deleting_each_other_at_once_leave_one_admin(
    app: FastAPI, client: AsyncClient, attempt: int
) -> None:
    await race_to_delete_each_other(app, client)


async def test_two_admins_deleting_each_other_with_overlapping_locks(
    app: FastAPI, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    widen_the_race(monkeypatch)
    await race_to_delete_each_other(app, client)


# Authorised where written: an admin request in flight when its admin is demoted


@pytest.mark.parametrize("attempt", range(3))  # a race: try it more than once
async def test_a_demotion_racing_a_self_promotion_ends_demoted(
    app: FastAPI, client: AsyncClient, monkeypatch: pytest.MonkeyPatch, attempt: int
) -> None:
    a_id, a = await admin_token(app, client, f"root.inflight{attempt}@example.com")
    _, b = await admin_token(app, client, f"root.demoter{attempt}@example.com")
    # A's request is resolved (A is still an admin) and then held, as if slow,
    # until B has demoted and deactivated A.
    resolved, demoted = asyncio.Event(), asyncio.Event()
    execute = AdminUpdateUser.execute

    async def held(self: AdminUpdateUser, actor: UserDTO, *args: Any) -> UserDTO:
        if actor.id == uuid.UUID(a_id):
            resolved.set()
            await demoted.wait()
        return await execute(self, actor, *args)

    monkeypatch.setattr(AdminUpdateUser, "execute", held)

    async def demote_a() -> Response:
        await resolved.wait()
        try:
            return await patch_user(client, b, a_id, {"role": "user", "is_active": False})
        finally:
            demoted.set()

    promotion, demotion = await asyncio.gather(
        patch_user(client, a, a_id, {"role": "admin", "is_active": True}), demote_a()
    )

    assert demotion.status_code == 200, demotion.text
    assert promotion.status_code in (401, 403), promotion.text
    stored = (await get_user(client, b, a_id)).json()
    assert (stored["role"], stored["is_active"]) == ("user", False)


async def test_an_admin_deleted_in_flight_deletes_nobody(
    app: FastAPI, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_id, a = await admin_token(app, client, "root.doomed@example.com")
    _, b = await admin_token(app, client, "root.remover@example.com")
    victim, _ = await user_token(client, "victim@example.com")
    resolved, deleted = asyncio.Event(), asyncio.Event()
    execute = DeleteUser.execute

    async def held(self: DeleteUser, actor: UserDTO, user_id: uuid.UUID) -> None:
        if actor.id == uuid.UUID(a_id):
            resolved.set()
            await deleted.wait()
        await execute(self, actor, user_id)

    monkeypatch.setattr(DeleteUser, "execute", held)

    async def delete_a() -> Response:
        await resolved.wait()
        try:
            return await delete_user(client, b, a_id)
        finally:
            deleted.set()

    attempt, removal = await asyncio.gather(delete_user(client, a, victim["id"]), delete_a())

    assert removal.status_code == 204, removal.text
    assert_unauthenticated(attempt)
    assert (await get_user(client, b, victim["id"])).status_code == 200
