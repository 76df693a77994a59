"""Swagger UI and ReDoc served from the service's own files, never a CDN, so
/docs works offline, and under the strict Content-Security-Policy the pages
carry (`DOCS_CSP`: only the service's own scripts, no inline script).

The assets are fastapi-offline's copies of swagger-ui-dist and redoc. ReDoc's
page is FastAPI's own. Swagger UI's is FastAPI's with its inline start-up
script moved to `/docs/swagger-init.js`, built from the same settings
(`swagger_ui_parameters`, `swagger_ui_init_oauth`). (fastapi-offline's
`FastAPIOffline()` is not used: it needs an `openapi_url`, so it cannot build
the app with docs off, and it serves its assets whether docs are on or not.)
"""

import json
from typing import Any

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_oauth2_redirect_html,
    swagger_ui_default_parameters,
)
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs/assets"
SWAGGER_INIT_URL = "/docs/swagger-init.js"
# Swagger UI and ReDoc set inline styles and ReDoc starts a worker from a blob.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
_CSP = {"Content-Security-Policy": DOCS_CSP}

_SWAGGER_PAGE = """<!DOCTYPE html>
<html>
<head>
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link type="text/css" rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="shortcut icon" href="{assets}/favicon.png">
<title>{title}</title>
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{init}"></script>
</body>
</html>
"""


def add_docs(app: FastAPI) -> None:
    """Swagger UI at /docs (its OAuth2 redirect page included) and ReDoc at
    /redoc, for an app whose schema is served (`openapi_url`) and whose own
    `docs_url` and `redoc_url` are None."""
    openapi_url = app.openapi_url
    assert openapi_url, "the pages show the schema: serve it first"
    redirect_url = app.swagger_ui_oauth2_redirect_url
    app.mount(ASSETS_URL, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets")

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root(request)
        page = _SWAGGER_PAGE.format(
            assets=root + ASSETS_URL,
            init=root + SWAGGER_INIT_URL,
            title=f"{app.title} - Swagger UI",
        )
        return HTMLResponse(page, headers=_CSP)

    async def swagger_init(request: Request) -> Response:
        root = _root(request)
        script = _swagger_init_script(
            root + openapi_url,
            root + redirect_url if redirect_url else None,
            app.swagger_ui_parameters,
            app.swagger_ui_init_oauth,
        )
        return Response(script, media_type="text/javascript")

    async def redoc(request: Request) -> HTMLResponse:
        root = _root(request)
        page = get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
        page.headers.update(_CSP)
        return page

    async def swagger_ui_redirect(_: Request) -> HTMLResponse:
        # Used by the authorization-code and implicit flows only; the password
        # flow that this service offers posts to the token URL directly.
        return get_swagger_ui_oauth2_redirect_html()

    app.add_route(DOCS_URL, swagger_ui, include_in_schema=False)
    app.add_route(SWAGGER_INIT_URL, swagger_init, include_in_schema=False)
    if redirect_url:
        app.add_route(redirect_url, swagger_ui_redirect, include_in_schema=False)
    app.add_route(REDOC_URL, redoc, include_in_schema=False)


def _root(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def _swagger_init_script(
    openapi_url: str,
    redirect_url: str | None,
    parameters: dict[str, Any] | None,
    init_oauth: dict[str, Any] | None,
) -> str:
    """What FastAPI's page runs inline, as a script of its own."""
    settings = {"url": openapi_url, **swagger_ui_default_parameters, **(parameters or {})}
    lines = [
        f"const ui = SwaggerUIBundle(Object.assign({_js(settings)}, {{",
        "  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],",
    ]
    if redirect_url:
        lines.append(f"  oauth2RedirectUrl: window.location.origin + {_js(redirect_url)},")
    lines.append("}));")
    if init_oauth:
        lines.append(f"ui.initOAuth({_js(init_oauth)});")
    return "\n".join(lines) + "\n"


def _js(value: Any) -> str:
    # JSON is JavaScript; `<` escaped so no value can close a script element.
    return json.dumps(jsonable_encoder(value)).replace("<", "\\u003c")
