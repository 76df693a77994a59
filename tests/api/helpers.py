"""Small steps that API tests repeat: register, log in, promote."""

from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient, Response

from app.core.dtos import RegisterInput
from app.core.usecases.create_admin import CreateAdmin
from app.infra.api.services import services_of
from app.infra.db.unit_of_work import SqlUserUnitOfWork

PASSWORD = "correct-horse-battery"


async def register(
    client: AsyncClient, email: str = "ann@example.com", password: str = PASSWORD, name: str = "Ann"
) -> dict[str, Any]:
    response = await client.post(
        "/users", json={"name": name, "email": email, "password": password}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def token_response(client: AsyncClient, email: str, password: str = PASSWORD) -> Response:
    return await client.post("/auth/token", data={"username": email, "password": password})


async def login(
    client: AsyncClient, email: str = "ann@example.com", password: str = PASSWORD
) -> str:
    response = await token_response(client, email, password)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def user_token(
    client: AsyncClient, email: str = "ann@example.com", password: str = PASSWORD, name: str = "Ann"
) -> tuple[dict[str, Any], str]:
    user = await register(client, email, password, name)
    return user, await login(client, email, password)


async def admin_token(
    app: FastAPI, client: AsyncClient, email: str = "root@example.com", password: str = PASSWORD
) -> tuple[str, str]:
    """Creates an admin as the CLI does; returns its id and a token."""
    services = services_of(app)
    usecase = CreateAdmin(SqlUserUnitOfWork(services.sessionmaker), services.hasher, services.clock)
    admin = await usecase.execute(RegisterInput(email, password, "Root"))
    return str(admin.id), await login(client, email, password)


def assert_detail(response: Response, status_code: int) -> None:
    assert response.status_code == status_code, response.text
    body = response.json()
    assert set(body) == {"detail"}
    assert isinstance(body["detail"], str)
    assert body["detail"]


def assert_shape_error(response: Response, *secrets: str) -> None:
    """FastAPI's 422 shape through the project's handler: no `input`, nothing echoed."""
    assert response.status_code == 422, response.text
    items = response.json()["detail"]
    assert isinstance(items, list)
    assert items
    for item in items:
        assert set(item) == {"loc", "msg", "type"}
    for secret in secrets:
        assert secret not in response.text


async def assert_invalid_grant(client: AsyncClient, email: str, password: str = PASSWORD) -> None:
    response = await token_response(client, email, password)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_grant"
