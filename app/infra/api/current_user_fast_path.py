from fastapi.routing import APIRoute
from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.dtos import UserDTO
from app.core.usecases.resolve_current_user import ResolveCurrentUser
from app.infra.api.errors import handler_for
from app.infra.api.routers import users
from app.infra.api.services import services_of

PATH = "/users/me"
_USER_JSON = TypeAdapter(UserDTO)
# The route this stands in for.
_ROUTE = next(
    route
    for route in users.router.routes
    if isinstance(route, APIRoute) and route.path == PATH and "GET" in (route.methods or ())
)


class CurrentUserFastPath:
    """Serves `GET /users/me`, the hottest endpoint, without FastAPI's
    per-request routing and dependency solving, which cost more than the
    rest of the request together.

    It answers exactly as the route in routers/users.py (which documents the
    endpoint and serves what this declines): the bearer token is read as
    OAuth2PasswordBearer reads it, the same use case resolves the user afresh
    from the database, and failures go through the same handlers
    (errors.HANDLERS). It sits innermost among the middlewares, so logging,
    limits, CORS and headers apply as to any route. `dependency_overrides`
    do not reach it: it takes the reader and the token issuer from the app's
    services, not from dependencies.py.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        services = services_of(scope["app"])
        # Noted as the router notes the route it chose (metrics label requests by it).
        scope["route"] = _ROUTE
        try:
            resolve = ResolveCurrentUser(services.reader, services.tokens, services.clock)
            caller = await resolve.execute(bearer_token(scope))
        except Exception as exc:
            handler = handler_for(exc)
            if handler is None:
                raise  # a bug: a 500 from the outermost layer, as for a route
            response = await handler(Request(scope), exc)
            await response(scope, receive, send)
            return
        # UserDTO has UserResponse's fields, in its order and types: serialised
        # straight away (the route-equivalence tests compare the bytes).
        body = _USER_JSON.dump_json(caller.user)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def bearer_token(scope: Scope) -> str | None:
    """The token of `Authorization: Bearer <token>`, as OAuth2PasswordBearer reads it."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer":
                return None
            return token.strip() or None
    return None
