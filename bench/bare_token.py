"""The refresh ceiling: a bare FastAPI app that parses the token form and
answers a constant token.

`refresh_rps` is read against it: what one uvicorn worker with FastAPI's form
parsing (python-multipart, the same as the service's) serves on this machine
when a refresh costs nothing, no database, no signing. bench.run passes the
service's real token response through the environment, so both send the same
bytes.

    python -m uvicorn bench.bare_token:app --port 8002 --workers 1 --no-access-log
"""

from typing import Annotated

from fastapi import FastAPI, Form, Response

from bench.ceiling import DEFAULT_TOKEN, TOKEN_BODY_ENV, body_from_env

_TOKEN = body_from_env(TOKEN_BODY_ENV, DEFAULT_TOKEN)
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

app = FastAPI(openapi_url=None)


@app.post("/auth/token")
async def token(
    grant_type: Annotated[str, Form()],
    refresh_token: Annotated[str | None, Form()] = None,
    username: Annotated[str | None, Form()] = None,
    password: Annotated[str | None, Form()] = None,
) -> Response:
    return Response(_TOKEN, media_type="application/json", headers=_NO_STORE)


@app.get("/health")
async def health() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")
