"""Swagger UI and ReDoc render in Chromium under the Content-Security-Policy
they carry, from the service's own files: the page loads nothing from another
host (every request outside the server is aborted) and the CSP blocks none of
the service's own scripts or styles. (ReDoc's bundle shows Redocly's logo from
its CDN; the CSP blocks that image, which is the point.)

Run with `make e2e`, like tests/e2e/test_browser.py (whose fixtures start the
server and the browser)."""

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import ConsoleMessage, Locator, Page, Route, expect

from tests.e2e.test_browser import TIMEOUT_MS, api, browser, chromium, frontend, page
from tests.server_process import ServerProcess

pytestmark = pytest.mark.e2e
__all__ = ["api", "browser", "chromium", "frontend", "page"]  # fixtures used here


def watch(page: Page, server: ServerProcess) -> tuple[list[str], list[str]]:
    """CSP violations of the service's own page (its files, inline code, eval),
    and requests to any other host (aborted)."""
    violations: list[str] = []
    elsewhere: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        text = message.text
        if "Content Security Policy" in text and (
            server.base_url in text or "inline" in text or "eval" in text
        ):
            violations.append(text)

    def on_route(route: Route) -> None:
        url = route.request.url
        if url.startswith(server.base_url) or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            elsewhere.append(url)
            route.abort()

    page.on("console", on_console)
    page.route("**/*", on_route)
    return violations, elsewhere


@pytest.mark.parametrize(
    ("path", "rendered"),
    [
        ("/docs", lambda page: page.locator(".swagger-ui .info .title")),
        ("/redoc", lambda page: page.get_by_role("heading", name=re.compile("User service"))),
    ],
)
def test_the_docs_render_under_their_csp_from_the_service_alone(
    page: Page, api: ServerProcess, path: str, rendered: Callable[[Page], Locator]
) -> None:
    violations, elsewhere = watch(page, api)

    page.goto(f"{api.base_url}{path}")

    expect(rendered(page)).to_contain_text("User service", timeout=TIMEOUT_MS)
    assert violations == []
    assert elsewhere == []


def test_swagger_ui_authorize_offers_the_password_flow(page: Page, api: ServerProcess) -> None:
    violations, _ = watch(page, api)
    page.goto(f"{api.base_url}/docs")

    page.get_by_role("button", name="Authorize").first.click()

    dialog = page.locator(".auth-container")
    expect(dialog).to_contain_text("Flow: password")
    expect(dialog).to_contain_text("/auth/token")
    assert violations == []
