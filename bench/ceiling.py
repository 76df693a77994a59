"""The ceiling: a bare ASGI app on the same uvicorn, answering constant bodies.

It measures what one uvicorn worker can serve on this machine with no framework,
no validation and no database, so the service's figures can be read as a
fraction of it. Only the standard library is imported, so its memory is the
floor too. bench.run passes the service's real response bodies through the
environment, so both servers send the same bytes; the defaults below have the
same shape and a typical size, for running it on its own:

    python -m uvicorn bench.ceiling:app --port 8001 --workers 1 --no-access-log
"""

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

ME_BODY_ENV = "BENCH_CEILING_ME_BODY"
TOKEN_BODY_ENV = "BENCH_CEILING_TOKEN_BODY"  # noqa: S105 - a variable name

_DEFAULT_ME = {
    "id": "0c1624fb-0c15-4f07-af08-851ef0710af7",
    "name": "Bench User",
    "email": "bench-0123abcd@example.com",
    "role": "user",
    "is_active": True,
    "created_at": "2026-11-24T18:30:21.940617Z",
    "updated_at": "2026-11-24T18:30:21.940617Z",
}
DEFAULT_TOKEN = {
    "access_token": "x" * 335,
    "token_type": "bearer",
    "expires_in": 1800,
    "refresh_token": "x" * 43,
    "refresh_token_expires_in": 604800,
}


def body_from_env(env_name: str, default: object) -> bytes:
    return os.environ.get(env_name, "").encode() or json.dumps(default).encode()


def _response(body: bytes, extra: Headers | None = None) -> tuple[Message, Message]:
    start: Message = {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *(extra or []),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


# Built once: the hot path is a dict lookup and two sends.
_ROUTES: dict[tuple[str, str], tuple[Message, Message]] = {
    ("GET", "/users/me"): _response(body_from_env(ME_BODY_ENV, _DEFAULT_ME)),
    # The real endpoint sends these two headers as well.
    ("POST", "/auth/token"): _response(
        body_from_env(TOKEN_BODY_ENV, DEFAULT_TOKEN),
        [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")],
    ),
    ("GET", "/health"): _response(b'{"status":"ok"}'),
}
_NOT_FOUND: tuple[Message, Message] = (
    {
        "type": "http.response.start",
        "status": 404,
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"22")],
    },
    {"type": "http.response.body", "body": b'{"detail":"Not Found"}'},
)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    if scope["method"] in ("POST", "PUT", "PATCH"):
        await _read_body(receive)  # as the real endpoint reads its form
    start, body = _ROUTES.get((scope["method"], scope["path"]), _NOT_FOUND)
    await send(start)
    await send(body)


async def _read_body(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


async def _lifespan(receive: Receive, send: Send) -> None:
    # Answered so that uvicorn logs no "lifespan unsupported" noise.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
