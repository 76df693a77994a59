"""Swagger UI and ReDoc come with their assets from the service itself: no CDN,
so /docs works offline and loads nothing from another host.
DOCS_ENABLED=false hiding them, assets included: test_observability.py."""

import re

import pytest
from httpx import AsyncClient

# Every URL the page loads: src=, href= and spec-url= attributes, and url: in its script.
_LOADED = re.compile(r"""(?:src|href|spec-url)=["']([^"']+)|url:\s*['"]([^'"]+)""")


def loaded_urls(html: str) -> list[str]:
    return [a or b for a, b in _LOADED.findall(html)]


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
    html = response.text
    assert "cdn.jsdelivr.net" not in html
    assert "fonts.googleapis.com" not in html
    # No absolute URL at all: whatever the page names is on this host.
    assert not re.search(r"(?:https?:)?//[a-z0-9]", html, re.IGNORECASE), html
    urls = loaded_urls(html)
    assert "/openapi.json" in urls
    served = [url for url in urls if url != "/openapi.json"]
    assert {url[url.rindex(".") :] for url in served} == set(assets)
    for url in served:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert assets[url[url.rindex(".") :]] in asset.headers["content-type"], url
        assert len(asset.content) > 1000, url


async def test_swagger_ui_logs_in_through_the_token_endpoint(client: AsyncClient) -> None:
    html = (await client.get("/docs")).text
    assert "oauth2RedirectUrl: window.location.origin + '/docs/oauth2-redirect'" in html
    redirect = await client.get("/docs/oauth2-redirect")
    assert redirect.status_code == 200
    assert "oauth2" in redirect.text
    schema = (await client.get("/openapi.json")).json()
    flows = [s["flows"] for s in schema["components"]["securitySchemes"].values()]
    assert flows == [{"password": {"scopes": {}, "tokenUrl": "/auth/token"}}]
    # The docs' own routes stay out of the schema.
    assert not [path for path in schema["paths"] if path.startswith(("/docs", "/redoc"))]
