"""Swagger UI and ReDoc come with their assets from the service itself: no CDN,
so /docs works offline and loads nothing from another host; no inline script,
so they work under the strict CSP they carry (rendered in Chromium:
tests/e2e/test_docs_browser.py). DOCS_ENABLED=false hiding them, assets
included: test_observability.py."""

import re

import pytest
from httpx import AsyncClient

from app.infra.api.docs import DOCS_CSP

# Every URL a page or script loads: src=, href= and spec-url= attributes, and "url" settings.
_LOADED = re.compile(r"""(?:src|href|spec-url)=["']([^"']+)|"url":\s*"([^"]+)["]""")
_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)


def loaded_urls(text: str) -> list[str]:
    return [a or b for a, b in _LOADED.findall(text)]


@pytest.mark.parametrize(
    ("page", "assets"),
    [
        ("/docs", {".js": "javascript", ".css": "text/css", ".png": "image/png"}),
        ("/redoc", {".js": "javascript", ".png": "image/png"}),
    ],
)
async def test_docs_pages_load_everything_from_the_service(
    client: AsyncClient, page: str, assets: dict[str, str]
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == DOCS_CSP
    html = response.text
    assert not _INLINE_SCRIPT.search(html), html
    assert "cdn.jsdelivr.net" not in html
    assert "fonts.googleapis.com" not in html
    # No absolute URL at all: whatever the page names is on this host.
    assert not re.search(r"(?:https?:)?//[a-z0-9]", html, re.IGNORECASE), html
    urls = loaded_urls(html)
    for script in [url for url in urls if url.endswith("-init.js")]:
        urls += loaded_urls((await client.get(script)).text)
    assert "/openapi.json" in urls
    served = [url for url in urls if url != "/openapi.json"]
    assert {url[url.rindex(".") :] for url in served} == set(assets)
    for url in served:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert assets[url[url.rindex(".") :]] in asset.headers["content-type"], url
        assert len(asset.content) > 100, url  # a real file, not an empty answer


async def test_swagger_ui_logs_in_through_the_token_endpoint(client: AsyncClient) -> None:
    init = await client.get("/docs/swagger-init.js")
    assert init.headers["content-type"].startswith("text/javascript")
    assert 'oauth2RedirectUrl: window.location.origin + "/docs/oauth2-redirect"' in init.text
    redirect = await client.get("/docs/oauth2-redirect")
    assert redirect.status_code == 200
    assert "oauth2" in redirect.text
    schema = (await client.get("/openapi.json")).json()
    flows = [s["flows"] for s in schema["components"]["securitySchemes"].values()]
    assert flows == [{"password": {"scopes": {}, "tokenUrl": "/auth/token"}}]
    # The docs' own routes stay out of the schema.
    assert not [path for path in schema["paths"] if path.startswith(("/docs", "/redoc"))]
