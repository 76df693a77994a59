import itertools
import logging
import re
import secrets
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logger import request_id

log = logging.getLogger("app.access")

# An incoming id is kept only if it is short and plain, so it cannot forge log lines.
_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


class RequestContextMiddleware:
    """What every response gets, in one layer (each layer costs every request):

    - a request id, taken from `X-Request-ID` or made up, returned in
      `X-Request-ID` and attached to every log record of the request;
    - `X-Content-Type-Options: nosniff`, and `Cache-Control: no-store` on
      responses to requests that carry credentials (RFC 6750 §5.3);
    - one access line: method, path (never the query), status, duration.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming, authenticated = None, False
        for name, value in scope["headers"]:
            if name == b"x-request-id" and _VALID_REQUEST_ID.fullmatch(value):
                incoming = value
            elif name == b"authorization":
                authenticated = True
        rid = incoming.decode() if incoming else _new_request_id()
        token = request_id.set(rid)
        added = [(b"x-request-id", rid.encode()), (b"x-content-type-options", b"nosniff")]
        status = 500

        async def send_with_context(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), *added]
                if authenticated and not any(k == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_context)
        finally:
            if log.isEnabledFor(logging.INFO):
                method, path = scope["method"], scope["path"]
                duration_ms = round((time.perf_counter() - started) * 1000, 1)
                extra = {
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": duration_ms,
                }
                log.info("%s %s %d", method, path, status, extra=extra)
            request_id.reset(token)


# Unique, not secret: a random prefix per process and a counter, far cheaper
# per request than a fresh uuid4.
_PREFIX = secrets.token_hex(8)
_COUNTER = itertools.count()


def _new_request_id() -> str:
    return f"{_PREFIX}{next(_COUNTER):016x}"
