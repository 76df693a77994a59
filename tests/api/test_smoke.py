from fastapi import FastAPI
from httpx import AsyncClient

from tests.api.helpers import admin_token, bearer, user_token


async def test_register_login_me(client: AsyncClient) -> None:
    user, token = await user_token(client)
    response = await client.get("/users/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == user


async def test_admin_lists_users(app: FastAPI, client: AsyncClient) -> None:
    await user_token(client)
    _, token = await admin_token(app, client)
    response = await client.get("/users", headers=bearer(token))
    assert response.status_code == 200
    assert [u["email"] for u in response.json()["items"]] == ["ann@example.com", "root@example.com"]
