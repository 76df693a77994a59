"""End to end: examples/frontend in headless Chromium against a real server.

The page is served from one origin and the API from another (a different
port), so the browser applies CORS exactly as it would to a real frontend:
the login is a form POST built with URLSearchParams, and `GET /users/me`
with its Authorization header needs a preflight that CORS_ORIGINS allows.

Chromium is Debian's (`apt-get install chromium`), driven by Playwright for
Python; Playwright's own browser downloads are never used. Without it the
module skips, except under CI=true where that is a failure.

Run with `make e2e`; `make test` deselects the `e2e` marker.
"""

import functools
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from playwright.sync_api import Browser, Page, Response, expect, sync_playwright

from tests import server_process
from tests.conftest import IN_CI, ROOT, alembic_config
from tests.server_process import ServerProcess

pytestmark = pytest.mark.e2e

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
FRONTEND_DIR = ROOT / "examples" / "frontend"
NAME = "Ann Example"
EMAIL = "ann@example.com"
PASSWORD = "correct-horse-battery"
TIMEOUT_MS = 15_000


class QuietHandler(SimpleHTTPRequestHandler):
    """Serves examples/frontend without writing a line per request to stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module", autouse=True)
def chromium() -> Path:
    """Checked first, so nothing is started when there is no browser."""
    if not CHROMIUM.is_file():
        message = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if IN_CI:
            pytest.fail(f"{message}; CI=true requires it", pytrace=False)
        pytest.skip(f"{message}; CI=true makes this a failure")
    return CHROMIUM


@pytest.fixture(scope="module")
def frontend() -> Iterator[str]:
    """The page's origin: a static server on a port of its own."""
    handler = functools.partial(QuietHandler, directory=str(FRONTEND_DIR))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def api(frontend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real uvicorn process on a fresh, migrated SQLite file, allowing the page's origin."""
    workdir = tmp_path_factory.mktemp("e2e")  # also the cwd: no .env is read
    database_url = f"sqlite+aiosqlite:///{workdir / 'e2e.db'}"
    # On a thread of its own: the migrations call asyncio.run(), which refuses
    # to run on this thread once Playwright's sync API has its loop here.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(command.upgrade, alembic_config(database_url), "head").result()

    env = server_process.app_env(database_url, CORS_ORIGINS=frontend)
    (port,) = server_process.free_ports(1)
    server = server_process.start_uvicorn(env, port, workdir)
    try:
        server_process.wait_until_healthy(server)
        yield server
    finally:
        server_process.stop(server)
        if logged := server.output():
            print(f"--- the API logged:\n{logged}")  # shown by pytest with a failure


@pytest.fixture(scope="module")
def user(api: ServerProcess) -> dict[str, Any]:
    response = httpx.post(
        f"{api.base_url}/users",
        json={"name": NAME, "email": EMAIL, "password": PASSWORD},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # --no-sandbox: Chromium's sandbox refuses to run as root (containers, CI).
        browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context per test: no storage or cookies carried over."""
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def open_page(page: Page, frontend: str, api: ServerProcess) -> None:
    page.goto(f"{frontend}/?api={api.base_url}")
    expect(page.get_by_label("API base URL")).to_have_value(api.base_url)


def submit_login(page: Page, email: str, password: str) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def is_endpoint(path: str) -> Any:
    return lambda response: response.url.split("?")[0].endswith(path)


def test_logs_in_shows_the_user_and_keeps_the_token_in_memory_only(
    page: Page, frontend: str, api: ServerProcess, user: dict[str, Any]
) -> None:
    # Playwright reports no preflights; the DevTools protocol does.
    preflights: list[tuple[str, int]] = []

    def on_response(event: dict[str, Any]) -> None:
        if event.get("type") == "Preflight":
            preflights.append((event["response"]["url"], event["response"]["status"]))

    devtools = page.context.new_cdp_session(page)
    devtools.on("Network.responseReceived", on_response)
    devtools.send("Network.enable")
    open_page(page, frontend, api)

    with (
        page.expect_response(is_endpoint("/auth/token")) as token_info,
        page.expect_response(is_endpoint("/users/me")) as me_info,
    ):
        submit_login(page, EMAIL, PASSWORD)

    expect(page.locator("#profile-email")).to_have_text(EMAIL, timeout=TIMEOUT_MS)
    expect(page.locator("#profile-name")).to_have_text(NAME)
    expect(page.get_by_role("alert")).to_have_text("")

    token_response: Response = token_info.value
    assert token_response.status == 200
    assert token_response.request.headers["content-type"] == (
        "application/x-www-form-urlencoded;charset=UTF-8"
    )
    assert token_response.request.post_data == (
        "username=ann%40example.com&password=correct-horse-battery"
    )
    token = token_response.json()["access_token"]

    # Cross-origin, and allowed: the API named the page's origin in its CORS headers.
    me_response: Response = me_info.value
    assert me_response.status == 200
    sent = me_response.request.all_headers()
    assert sent["authorization"] == f"Bearer {token}"
    assert sent["origin"] == frontend
    assert me_response.headers["access-control-allow-origin"] == frontend
    assert me_response.json()["id"] == user["id"]
    # The form POST is a "simple" request; only the Authorization header needs a preflight.
    assert preflights == [(f"{api.base_url}/users/me", 200)]

    # In a JavaScript variable, and nowhere the browser would keep it.
    assert page.evaluate("() => accessToken") == token
    stored = page.evaluate(
        """() => JSON.stringify({
            local: Object.entries(localStorage),
            session: Object.entries(sessionStorage),
            cookie: document.cookie,
        })"""
    )
    assert token not in stored
    assert page.evaluate("() => localStorage.length + sessionStorage.length") == 0
    assert page.context.cookies() == []

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    expect(page.locator("#profile")).to_be_hidden()
    expect(page.get_by_label("Password")).to_have_value("")
    assert page.evaluate("() => accessToken") is None

    # A reload forgets everything: the profile is not shown again.
    page.reload()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    expect(page.locator("#profile")).to_be_hidden()


def test_a_wrong_password_shows_the_error_description(
    page: Page, frontend: str, api: ServerProcess, user: dict[str, Any]
) -> None:
    open_page(page, frontend, api)

    with page.expect_response(is_endpoint("/auth/token")) as token_info:
        submit_login(page, EMAIL, "not-the-password")

    expect(page.get_by_role("alert")).to_have_text(
        "Incorrect email or password", timeout=TIMEOUT_MS
    )
    response: Response = token_info.value
    assert response.status == 400
    assert response.json()["error"] == "invalid_grant"
    expect(page.locator("#profile")).to_be_hidden()
    assert page.evaluate("() => accessToken") is None


def test_a_page_from_an_origin_not_in_cors_origins_cannot_read_the_api(
    page: Page, frontend: str, api: ServerProcess, user: dict[str, Any]
) -> None:
    # Same static server, but `localhost` is another origin than `127.0.0.1`.
    other_origin = frontend.replace("127.0.0.1", "localhost")
    open_page(page, other_origin, api)

    submit_login(page, EMAIL, PASSWORD)

    expect(page.get_by_role("alert")).to_contain_text(
        f"Could not reach {api.base_url}", timeout=TIMEOUT_MS
    )
    expect(page.locator("#profile")).to_be_hidden()
    assert page.evaluate("() => accessToken") is None
