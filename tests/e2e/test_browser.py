"""End to end: examples/frontend in headless Chromium against a real server.

The page is served from one origin and the API from another (a different
port), so the browser applies CORS exactly as it would to a real frontend:
the login is a form POST built with URLSearchParams, and `GET /users/me`
with its Authorization header needs a preflight that CORS_ORIGINS allows.

Besides the login: the silent refresh (Playwright's clock jumps to it, so no
test waits out a token), the refresh-and-retry after a 401, the logout, and
the mailed links: a real SMTP server (aiosmtpd) in this process receives the
mail the server process sends, and the browser opens the link from it.

Chromium is Debian's (`apt-get install chromium`), driven by Playwright for
Python; Playwright's own browser downloads are never used. Without it the
module skips, except under CI=true where that is a failure.

Run with `make e2e`; `make test` deselects the `e2e` marker.
"""

import email.policy
import functools
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from email import message_from_bytes
from email.message import EmailMessage
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from alembic import command
from playwright.sync_api import (
    Browser,
    Locator,
    Page,
    Request,
    Response,
    Route,
    expect,
    sync_playwright,
)

from tests import server_process
from tests.conftest import IN_CI, ROOT, alembic_config
from tests.server_process import ServerProcess

pytestmark = pytest.mark.e2e

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
FRONTEND_DIR = ROOT / "examples" / "frontend"
NAME = "Ann Example"
EMAIL = "ann@example.com"
PASSWORD = "correct-horse-battery"
NEW_PASSWORD = "staple-lamp-orbit-42"
TIMEOUT_MS = 15_000
MAIL_DEADLINE_SECONDS = 15.0  # the dispatcher sends within about a second
SESSION_ENDED = "Your session has ended: please log in again."
NO_TOKEN = "This link has no token: open the link from the email again, or ask for a new one."
# Records each fetch() as the page calls it: a timer that fires inside
# clock.fast_forward() calls fetch before fast_forward returns, so the log is
# complete at once, with no wait for network events.
FETCH_LOG = """(() => {
  window.fetchLog = [];
  const originalFetch = window.fetch;
  window.fetch = (resource, init) => {
    window.fetchLog.push(`${init?.method ?? "GET"} ${resource}`);
    return originalFetch(resource, init);
  };
})();"""


class QuietHandler(SimpleHTTPRequestHandler):
    """Serves examples/frontend without writing a line per request to stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[EmailMessage] = []

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        assert envelope.original_content is not None
        self.messages.append(
            message_from_bytes(envelope.original_content, policy=email.policy.default)
        )
        return "250 Message accepted for delivery"

    def wait_for(self, to: str, subject: str) -> EmailMessage:
        """The first message to `to` with `subject`, once it has arrived."""
        deadline = time.monotonic() + MAIL_DEADLINE_SECONDS
        while time.monotonic() < deadline:
            for message in list(self.messages):
                if message["To"].addresses[0].addr_spec == to and message["Subject"] == subject:
                    return message
            time.sleep(0.05)
        received = [(str(m["To"]), str(m["Subject"])) for m in self.messages]
        pytest.fail(f"no mail {subject!r} to {to} within the deadline; received: {received}")


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


@contextmanager
def running_api(frontend: str, workdir: Path, **settings: str) -> Iterator[ServerProcess]:
    """A real uvicorn process on a fresh, migrated SQLite file, allowing the page's origin."""
    database_url = f"sqlite+aiosqlite:///{workdir / 'e2e.db'}"
    # On a thread of its own: the migrations call asyncio.run(), which refuses
    # to run on this thread once Playwright's sync API has its loop here.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(command.upgrade, alembic_config(database_url), "head").result()

    env = server_process.app_env(database_url, CORS_ORIGINS=frontend, **settings)
    (port,) = server_process.free_ports(1)
    server = server_process.start_uvicorn(env, port, workdir)  # workdir is the cwd: no .env
    try:
        server_process.wait_until_healthy(server)
        yield server
    finally:
        server_process.stop(server)
        if logged := server.output():
            print(f"--- the API logged:\n{logged}")  # shown by pytest with a failure


@pytest.fixture(scope="module")
def api(frontend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_api(frontend, tmp_path_factory.mktemp("e2e")) as server:
        yield server


@pytest.fixture(scope="module")
def short_lived_api(
    frontend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """Access tokens live 60 seconds, so the page refreshes them after 30."""
    workdir = tmp_path_factory.mktemp("e2e-short")
    with running_api(frontend, workdir, ACCESS_TOKEN_EXPIRE_MINUTES="1") as server:
        yield server


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    """A plain SMTP server on a free port (in a thread of its own)."""
    inbox = Inbox(server_process.free_ports(1)[0])
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def mailing_api(
    frontend: str, inbox: Inbox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """Sends its mail over SMTP to `inbox`, with links to the page's origin."""
    workdir = tmp_path_factory.mktemp("e2e-mail")
    with running_api(
        frontend,
        workdir,
        EMAIL_BACKEND="smtp",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(inbox.port),
        SMTP_STARTTLS="false",
        EMAILS_FROM_EMAIL="no-reply@example.com",
        FRONTEND_URL=frontend,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def user(api: ServerProcess) -> dict[str, Any]:
    return register(api, EMAIL, NAME)


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


def register(api: ServerProcess, email: str, name: str) -> dict[str, Any]:
    response = httpx.post(
        f"{api.base_url}/users",
        json={"name": name, "email": email, "password": PASSWORD},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def api_login(api: ServerProcess, email: str, password: str) -> httpx.Response:
    return httpx.post(
        f"{api.base_url}/auth/token", data={"username": email, "password": password}, timeout=30
    )


def me(api: ServerProcess, access_token: str) -> httpx.Response:
    return httpx.get(
        f"{api.base_url}/users/me",
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=30,
    )


def open_page(page: Page, frontend: str, api: ServerProcess) -> None:
    page.goto(f"{frontend}/?api={api.base_url}")
    expect(page.get_by_label("API base URL")).to_have_value(api.base_url)


def login_form(page: Page) -> Locator:
    return page.locator("#login-form")


def submit_login(page: Page, email: str, password: str) -> None:
    form = login_form(page)
    form.get_by_label("Email").fill(email)
    form.get_by_label("Password").fill(password)
    form.get_by_role("button", name="Log in").click()


def is_endpoint(path: str) -> Callable[[Request | Response], bool]:
    return lambda event: event.url.split("?")[0].endswith(path)


def is_refresh(response: Response) -> bool:
    request = response.request
    return is_endpoint("/auth/token")(response) and "grant_type=refresh_token" in (
        request.post_data or ""
    )


def form_of(request: Request) -> dict[str, list[str]]:
    return parse_qs(request.post_data or "")


def page_tokens(page: Page) -> tuple[str | None, str | None]:
    access, refresh = page.evaluate("() => [accessToken, refreshToken]")
    return access, refresh


def fetch_log(page: Page) -> list[str]:
    log: list[str] = page.evaluate("() => fetchLog")
    return log


def mailed_link(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert isinstance(body, EmailMessage)
    match = re.search(r"\S+#token=[\w-]+", body.get_content())
    assert match, body.get_content()
    return match.group()


def test_logs_in_shows_the_user_and_keeps_the_tokens_in_memory_only(
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
    refresh_token = token_response.json()["refresh_token"]

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

    # In JavaScript variables, and nowhere the browser would keep them.
    assert page_tokens(page) == (token, refresh_token)
    stored = page.evaluate(
        """() => JSON.stringify({
            local: Object.entries(localStorage),
            session: Object.entries(sessionStorage),
            cookie: document.cookie,
        })"""
    )
    assert token not in stored
    assert refresh_token not in stored
    # The tab remembers the API base URL only (for the mailed links), no token.
    assert page.evaluate("() => localStorage.length") == 0
    assert page.evaluate("() => Object.entries(sessionStorage)") == [["apiBase", api.base_url]]
    assert page.context.cookies() == []

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    expect(page.locator("#profile")).to_be_hidden()
    expect(login_form(page).get_by_label("Password")).to_have_value("")
    assert page_tokens(page) == (None, None)

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
    assert page_tokens(page) == (None, None)


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
    assert page_tokens(page) == (None, None)


def log_in(page: Page, frontend: str, api: ServerProcess, email: str) -> dict[str, Any]:
    """Logs in on the page; returns the token response's body."""
    open_page(page, frontend, api)
    with page.expect_response(is_endpoint("/auth/token")) as token_info:
        submit_login(page, email, PASSWORD)
    expect(page.locator("#profile-email")).to_have_text(email)
    response: Response = token_info.value
    assert response.status == 200
    tokens: dict[str, Any] = response.json()
    return tokens


def test_the_page_refreshes_both_tokens_before_the_access_token_expires(
    page: Page, frontend: str, short_lived_api: ServerProcess
) -> None:
    email = "rolf@example.com"
    register(short_lived_api, email, "Rolf Refresh")
    page.clock.install()
    page.add_init_script(FETCH_LOG)
    open_page(page, frontend, short_lived_api)
    # From now on only the test moves the page's time.
    page.clock.pause_at(page.evaluate("() => Date.now()") + 1000)
    login = log_in(page, frontend, short_lived_api, email)
    assert login["expires_in"] == 60  # so the refresh is due after max(60 - 60, 60 / 2) s

    page.clock.fast_forward("00:29")
    base = short_lived_api.base_url
    assert fetch_log(page) == [f"POST {base}/auth/token", f"GET {base}/users/me"]
    assert page_tokens(page) == (login["access_token"], login["refresh_token"])

    with page.expect_response(is_refresh) as first_info:
        page.clock.fast_forward("00:02")
    first: Response = first_info.value
    assert first.status == 200
    assert form_of(first.request) == {
        "grant_type": ["refresh_token"],
        "refresh_token": [login["refresh_token"]],
    }
    rotated = first.json()
    assert rotated["access_token"] != login["access_token"]
    assert rotated["refresh_token"] != login["refresh_token"]
    page.wait_for_function("token => refreshToken === token", arg=rotated["refresh_token"])
    assert page_tokens(page) == (rotated["access_token"], rotated["refresh_token"])
    expect(page.locator("#profile-email")).to_have_text(email)
    expect(page.get_by_role("alert")).to_have_text("")

    # The next call carries the new access token.
    with page.expect_response(is_endpoint("/users/me")) as me_info:
        page.get_by_role("button", name="Reload profile").click()
    me_response: Response = me_info.value
    assert me_response.status == 200
    assert me_response.request.headers["authorization"] == f"Bearer {rotated['access_token']}"

    # And the next refresh is scheduled anew, with the refresh token of the new pair.
    with page.expect_response(is_refresh) as second_info:
        page.clock.fast_forward("00:31")
    second: Response = second_info.value
    assert second.status == 200
    assert form_of(second.request)["refresh_token"] == [rotated["refresh_token"]]


def test_a_refused_refresh_ends_the_session_on_the_page(
    page: Page, frontend: str, short_lived_api: ServerProcess
) -> None:
    email = "rita@example.com"
    register(short_lived_api, email, "Rita Refused")
    page.clock.install()
    login = log_in(page, frontend, short_lived_api, email)
    # The session ends elsewhere (here: a logout from another client).
    ended = httpx.post(
        f"{short_lived_api.base_url}/auth/logout",
        headers={"Authorization": f"Bearer {login['access_token']}"},
        timeout=30,
    )
    assert ended.status_code == 204

    with page.expect_response(is_refresh) as refresh_info:
        page.clock.fast_forward("00:31")

    refused: Response = refresh_info.value
    assert refused.status == 400
    assert refused.json()["error"] == "invalid_grant"
    expect(page.get_by_role("alert")).to_have_text(SESSION_ENDED)
    expect(page.locator("#profile")).to_be_hidden()
    expect(login_form(page).get_by_role("button", name="Log in")).to_be_visible()
    assert page_tokens(page) == (None, None)


def test_a_401_refreshes_once_and_retries_with_the_new_token(
    page: Page, frontend: str, api: ServerProcess, user: dict[str, Any]
) -> None:
    login = log_in(page, frontend, api, EMAIL)
    seen: list[tuple[str, int]] = []
    page.on("response", lambda r: seen.append((r.url.removeprefix(api.base_url), r.status)))

    # The next /users/me reaches the server with a token it refuses: a real 401.
    spoiled: list[str] = []

    def spoil_once(route: Route) -> None:
        if spoiled:
            route.continue_()
            return
        spoiled.append(route.request.headers["authorization"])
        route.continue_(headers={**route.request.headers, "authorization": "Bearer not-a-token"})

    page.route(f"{api.base_url}/users/me", spoil_once)
    with page.expect_response(lambda r: is_endpoint("/users/me")(r) and r.status == 200) as info:
        page.get_by_role("button", name="Reload profile").click()

    retried: Response = info.value
    assert spoiled == [f"Bearer {login['access_token']}"]
    assert seen == [("/users/me", 401), ("/auth/token", 200), ("/users/me", 200)]
    access, refresh = page_tokens(page)
    assert refresh not in (None, login["refresh_token"])
    assert access not in (None, login["access_token"])
    assert retried.request.headers["authorization"] == f"Bearer {access}"
    expect(page.locator("#profile-email")).to_have_text(EMAIL)
    expect(page.get_by_role("alert")).to_have_text("")


def test_log_out_ends_the_session_on_the_server_and_stops_refreshing(
    page: Page, frontend: str, api: ServerProcess, user: dict[str, Any]
) -> None:
    page.clock.install()
    page.add_init_script(FETCH_LOG)
    login = log_in(page, frontend, api, EMAIL)

    with page.expect_response(is_endpoint("/auth/logout")) as logout_info:
        page.get_by_role("button", name="Log out").click()

    logout: Response = logout_info.value
    assert logout.status == 204
    assert logout.request.method == "POST"
    assert logout.request.headers["authorization"] == f"Bearer {login['access_token']}"
    expect(login_form(page).get_by_role("button", name="Log in")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_text("")
    assert page_tokens(page) == (None, None)
    # Both tokens are dead on the server.
    assert me(api, login["access_token"]).status_code == 401
    refreshed = httpx.post(
        f"{api.base_url}/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": login["refresh_token"]},
        timeout=30,
    )
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"

    # No refresh is left scheduled: well past the token's lifetime, no request at all.
    page.clock.fast_forward("02:00:00")
    assert fetch_log(page) == [
        f"POST {api.base_url}/auth/token",
        f"GET {api.base_url}/users/me",
        f"POST {api.base_url}/auth/logout",
    ]


def test_log_out_forgets_the_tokens_even_when_the_api_cannot_be_reached(
    page: Page, frontend: str, api: ServerProcess, user: dict[str, Any]
) -> None:
    login = log_in(page, frontend, api, EMAIL)
    page.route(f"{api.base_url}/auth/logout", lambda route: route.abort("connectionrefused"))

    with page.expect_request(is_endpoint("/auth/logout")):
        page.get_by_role("button", name="Log out").click()

    expect(login_form(page).get_by_role("button", name="Log in")).to_be_visible()
    expect(page.locator("#profile")).to_be_hidden()
    assert page_tokens(page) == (None, None)
    # The call never arrived: the session still works on the server, forgotten here.
    assert me(api, login["access_token"]).status_code == 200


def test_forgot_password_mails_a_link_whose_page_sets_a_new_password(
    page: Page, frontend: str, mailing_api: ServerProcess, inbox: Inbox
) -> None:
    email = "fay@example.com"
    register(mailing_api, email, "Fay Forgot")
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    open_page(page, frontend, mailing_api)

    page.get_by_role("button", name="Forgot password?").click()
    page.get_by_label("Account email").fill(email)
    with page.expect_response(is_endpoint("/auth/password/forgot")) as forgot_info:
        page.get_by_role("button", name="Send reset link").click()

    forgot: Response = forgot_info.value
    assert forgot.status == 202
    assert forgot.request.post_data_json == {"email": email}
    detail = "If an account exists for this email, a reset link has been sent"
    assert forgot.json() == {"detail": detail}
    expect(page.get_by_role("status")).to_have_text(detail)
    expect(page.get_by_role("alert")).to_have_text("")

    link = mailed_link(inbox.wait_for(email, "Reset your password"))
    token = link.split("#token=")[1]
    assert link == f"{frontend}/reset-password#token={token}"

    # Opened like a click in the mail: the token arrives in the fragment only.
    page.goto(link)
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    # The page has taken the token out of the address bar.
    assert page.url == f"{frontend}/reset-password/"
    # No ?api= in the link: the tab remembered the API base URL.
    expect(page.get_by_label("API base URL")).to_have_value(mailing_api.base_url)

    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_label("Confirm password").fill(NEW_PASSWORD)
    with page.expect_response(is_endpoint("/auth/password/reset")) as reset_info:
        page.get_by_role("button", name="Set new password").click()

    reset: Response = reset_info.value
    assert reset.status == 204
    assert reset.request.post_data_json == {"token": token, "new_password": NEW_PASSWORD}
    expect(page.get_by_role("status")).to_contain_text("Your password has been changed")
    expect(page.get_by_role("alert")).to_have_text("")
    expect(page.get_by_label("New password")).to_be_hidden()
    # No URL the browser asked for, of the static server or the API, held the token.
    assert requested
    assert [url for url in requested if token in url] == []
    inbox.wait_for(email, "Your password was changed")

    # The link works once: opened again, the API refuses it and the page says so.
    page.goto(link)
    page.get_by_label("New password").fill("another-new-password-7")
    page.get_by_label("Confirm password").fill("another-new-password-7")
    page.get_by_role("button", name="Set new password").click()
    expect(page.get_by_role("alert")).to_have_text("Invalid or expired token")

    # Back on the main page (same tab, same API): the old password fails, the new one works.
    page.get_by_role("link", name="Log in").click()
    expect(page.get_by_label("API base URL")).to_have_value(mailing_api.base_url)
    submit_login(page, email, PASSWORD)
    expect(page.get_by_role("alert")).to_have_text("Incorrect email or password")
    submit_login(page, email, NEW_PASSWORD)
    expect(page.locator("#profile-email")).to_have_text(email)
    # The reset proved the address is the user's.
    expect(page.locator("#profile-verified")).to_have_text("yes")


def test_the_verification_link_confirms_the_email_address(
    page: Page, frontend: str, mailing_api: ServerProcess, inbox: Inbox
) -> None:
    email = "vera@example.com"
    register(mailing_api, email, "Vera Verify")
    access_token = api_login(mailing_api, email, PASSWORD).json()["access_token"]
    assert me(mailing_api, access_token).json()["email_verified"] is False

    link = mailed_link(inbox.wait_for(email, "Confirm your email address"))
    token = link.split("#token=")[1]
    assert link == f"{frontend}/verify-email#token={token}"

    # A fresh tab remembers no API base URL: this one is given it with `?api=`.
    with page.expect_response(is_endpoint("/auth/verify-email")) as verify_info:
        page.goto(link.replace("#", f"?api={mailing_api.base_url}#"))

    verified: Response = verify_info.value
    assert verified.status == 204
    assert verified.request.post_data_json == {"token": token}
    expect(page.get_by_role("status")).to_have_text("Your email address is confirmed.")
    expect(page.get_by_role("alert")).to_have_text("")
    assert page.url == f"{frontend}/verify-email/?api={mailing_api.base_url}"
    assert me(mailing_api, access_token).json()["email_verified"] is True


@pytest.mark.parametrize("path", ["reset-password", "verify-email"])
def test_a_link_page_ignores_a_token_in_the_query_string(
    page: Page, frontend: str, api: ServerProcess, path: str
) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    page.goto(f"{frontend}/{path}/?token=from-the-query&api={api.base_url}")

    expect(page.get_by_role("alert")).to_have_text(NO_TOKEN)
    expect(page.get_by_role("button")).to_be_hidden()
    # Nothing was sent to the API.
    assert [url for url in requested if url.startswith(api.base_url)] == []
