"""Set-up through the service's public HTTP API, as a client would do it."""

import json
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx

from bench.procs import BenchError


@dataclass(frozen=True)
class Account:
    email: str
    password: str
    token: str
    token_body: bytes  # the real POST /auth/token response
    me_body: bytes  # the real GET /users/me response

    @property
    def refresh_token(self) -> str:
        """The refresh token of the session the account's login started."""
        return str(json.loads(self.token_body)["refresh_token"])

    @property
    def login_form(self) -> str:
        """The urlencoded form the login script posts."""
        return urlencode({"username": self.email, "password": self.password})


def new_credentials(prefix: str) -> tuple[str, str]:
    # Unique per run: a persistent PostgreSQL database keeps earlier runs' users.
    return f"{prefix}-{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)


def register(base_url: str, name: str, email: str, password: str) -> Account:
    """POST /users, then log in and read /users/me: the account wrk will use."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        created = client.post("/users", json={"name": name, "email": email, "password": password})
        _expect(created, 201, "POST /users")
    return log_in(base_url, email, password)


def log_in(base_url: str, email: str, password: str) -> Account:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        login = client.post("/auth/token", data={"username": email, "password": password})
        _expect(login, 200, "POST /auth/token")
        token = str(login.json()["access_token"])
        me = client.get("/users/me", headers=bearer(token))
        _expect(me, 200, "GET /users/me")
    return Account(email, password, token, login.content, me.content)


def more_sessions(base_url: str, account: Account, count: int) -> list[str]:
    """Refresh tokens of `count` sessions of the account: its own and count - 1 new logins."""
    logins = [log_in(base_url, account.email, account.password) for _ in range(count - 1)]
    return [account.refresh_token, *(login.refresh_token for login in logins)]


def get_json(base_url: str, path: str, token: str) -> dict[str, object]:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        response = client.get(path, headers=bearer(token))
    _expect(response, 200, f"GET {path}")
    body: dict[str, object] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _expect(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise BenchError(
            f"{what} answered {response.status_code}, not {status}: {response.text[:500]}"
        )
