"""Small steps that API tests repeat: register, log in, promote, read mail."""

import asyncio
import re
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response

from app.core.dtos import EmailMessage, RegisterInput
from app.core.usecases.create_admin import CreateAdmin
from app.infra.api.services import services_of
from app.infra.db.unit_of_work import SqlUserUnitOfWork
from app.infra.mail.dispatcher import MailDispatcher
from app.infra.mail.memory_sender import MemoryEmailSender

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
    usecase = CreateAdmin(
        SqlUserUnitOfWork(services.sessionmaker), services.hasher, services.clock, services.recovery
    )
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


# Mail


def dispatch_only_when_told(monkeypatch: pytest.MonkeyPatch) -> None:
    """Apps started after this send mail only at `mailed()`: the dispatcher's
    background loop (every second, in lifespan) idles, so it cannot take a
    request or claim a mail halfway through a test's own round."""

    async def idle(self: MailDispatcher, every_seconds: float) -> None:
        await asyncio.Event().wait()  # until lifespan cancels it

    monkeypatch.setattr(MailDispatcher, "run_forever", idle)


async def mailed(app: FastAPI) -> list[EmailMessage]:
    """Every mail the app has sent, after one dispatcher round (recorded
    requests turned into mail, then the due outbox sent)."""
    services = services_of(app)
    await services.mail.run_once()
    sender = services.mail_sender
    assert isinstance(sender, MemoryEmailSender), "make_settings sets EMAIL_BACKEND=memory"
    return list(sender.sent)


def link_token(message: EmailMessage, page: str) -> str:
    """The token of the message's link to `page` (reset-password, verify-email),
    the same in the text and HTML parts."""
    pattern = rf"/{page}#token=([A-Za-z0-9_-]+)"
    tokens: list[str] = re.findall(pattern, message.text)
    assert len(tokens) == 1, message.text
    assert set(re.findall(pattern, message.html)) == set(tokens)
    return tokens[0]
