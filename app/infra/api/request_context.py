import os
import re
import time

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.infra.api.errors import on_http_error
from app.infra.metrics import UNMATCHED, Metrics
from app.logger import access, request_id

# An incoming id is kept only if it is short and plain, so it cannot forge log lines.
_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
AMBIGUOUS_LENGTH = "Request has both Content-Length and Transfer-Encoding"


class RequestContextMiddleware:
    """What every response gets, in one layer (each layer costs every request):

    - a request id, taken from `X-Request-ID` or made up, returned in
      `X-Request-ID` and attached to every log record of the request;
    - `X-Content-Type-Options: nosniff`, and `Cache-Control: no-store` on
      responses to requests that carry credentials (RFC 6750 §5.3);
    - one access line: method, path (never the query), status, duration;
    - with metrics on, the request's count and duration by route template;
    - 400 and a closed connection for a request framed by both
      `Content-Length` and `Transfer-Encoding` (RFC 9112 §6.1), a request
      smuggling attempt: h11 serves it otherwise, and keeps the connection.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming, authenticated, length, chunked = None, False, False, False
        for name, value in scope["headers"]:
            if name == b"x-request-id" and _VALID_REQUEST_ID.fullmatch(value):
                incoming = value
            elif name == b"authorization":
                authenticated = True
            elif name == b"content-length":
                length = True
            elif name == b"transfer-encoding":
                chunked = True
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
            if length and chunked:
                # Its body is never read: what follows it on the connection is not a request.
                refusal = HTTPException(400, AMBIGUOUS_LENGTH, {"Connection": "close"})
                response = await on_http_error(Request(scope), refusal)
                await response(scope, receive, send_with_context)
            else:
                await self.app(scope, receive, send_with_context)
        finally:
            seconds = time.perf_counter() - started
            access(rid, scope["method"], scope["path"], status, seconds)
            if self.metrics is not None:
                self.metrics.request(route_template(scope), scope["method"], status, seconds)
            request_id.reset(token)


def route_template(scope: Scope) -> str:
    """The path template of the route that served the request (the router
    and the fast path note it in the scope), never the path itself."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


# Random per request, so ids reveal nothing of the request volume (a counter
# would); os.urandom is the cheapest unpredictable source (about 0.5 µs).
def _new_request_id() -> str:
    return os.urandom(16).hex()
