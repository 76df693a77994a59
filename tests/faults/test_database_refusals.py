"""The database answers but refuses, or is gone, while a real server runs.

Unlike an outage (test_database_outage.py), the server still answers here:
the server's database is dropped, or its role's password changes, its login
is revoked, or its connection limit reached. Each is an error of its own
(3D000, 28P01, 28000, 53300) on a new connection, and each must be 503 with
`Retry-After`, `/health/ready` 503 and no traceback in the log, until the
database is back, when the same process serves again by itself.

The server logs in with a password as a role of its own, on a database of
its own, both made on the throwaway cluster (conftest.py) and removed after.
"""

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
from alembic import command

from tests import server_process
from tests.conftest import alembic_config
from tests.faults.conftest import Cluster
from tests.faults.test_database_outage import (
    CLIENT_TIMEOUT_SECONDS,
    RECOVERY_DEADLINE_SECONDS,
    assert_no_traceback,
    assert_unavailable,
    login,
    recovery_calls,
    refresh_call,
    register,
    start_server,
)
from tests.server_process import ServerProcess

ROLE, PASSWORD, DATABASE = "refused_app", "the-right-password", "refused_app"
ANN = "ann@example.com"
# Only this role logs in with a password; the cluster trusts everyone else.
HBA_LINE = f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n"

# How the database turns the server away, and how that is undone.
REFUSALS = {
    "wrong password (28P01)": (
        f"ALTER ROLE {ROLE} PASSWORD 'rotated-elsewhere'",
        f"ALTER ROLE {ROLE} PASSWORD '{PASSWORD}'",
    ),
    "login revoked (28000)": (f"ALTER ROLE {ROLE} NOLOGIN", f"ALTER ROLE {ROLE} LOGIN"),
    "too many connections (53300)": (
        f"ALTER ROLE {ROLE} CONNECTION LIMIT 0",
        f"ALTER ROLE {ROLE} CONNECTION LIMIT -1",
    ),
}


async def _as_superuser(cluster: Cluster, *statements: str) -> None:
    connection = await asyncpg.connect(cluster.url.replace("+asyncpg", ""))
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def superuser(cluster: Cluster, *statements: str) -> None:
    asyncio.run(_as_superuser(cluster, *statements))


def drop_database(cluster: Cluster) -> None:
    # WITH (FORCE) ends the server's connections, as an operator's mistake would.
    superuser(cluster, f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def create_database(cluster: Cluster, url: str) -> None:
    superuser(cluster, f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
    command.upgrade(alembic_config(url), "head")


def end_connections(cluster: Cluster) -> None:
    """Ends the role's live connections, so the server has to open new ones."""
    superuser(
        cluster,
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{ROLE}'",  # noqa: S608
    )


@pytest.fixture(scope="module")
def app_database(pg_cluster: Cluster) -> Iterator[str]:
    """The URL of a migrated database owned by a role that logs in with a password."""
    hba = pg_cluster.data / "pg_hba.conf"
    original = hba.read_text()
    url = f"postgresql+asyncpg://{ROLE}:{PASSWORD}@127.0.0.1:{pg_cluster.port}/{DATABASE}"
    try:
        hba.write_text(HBA_LINE + original)
        superuser(pg_cluster, "SELECT pg_reload_conf()", f"CREATE ROLE {ROLE} LOGIN")
        superuser(pg_cluster, f"ALTER ROLE {ROLE} PASSWORD '{PASSWORD}'")
        create_database(pg_cluster, url)
        yield url
    finally:
        hba.write_text(original)
        if pg_cluster.is_running():
            drop_database(pg_cluster)
            superuser(pg_cluster, f"DROP ROLE IF EXISTS {ROLE}", "SELECT pg_reload_conf()")


@dataclass
class App:
    server: ServerProcess
    http: httpx.Client

    def signed_in(self) -> str:
        """An access token of Ann, registered first if the database is new."""
        assert register(self.http, ANN).status_code in (201, 409)
        token = login(self.http, ANN)
        assert token.status_code == 200, token.text
        return str(token.json()["access_token"])

    def calls(self, token: str) -> dict[str, Callable[[], httpx.Response]]:
        """The readiness check and one request per kind of database use: the
        batched reader (the /users/me fast path), the login throttle, a write,
        the refresh grant (on its own pool) and the recovery endpoints."""
        me = {"Authorization": f"Bearer {token}"}
        return {
            "GET /health/ready": lambda: self.http.get("/health/ready"),
            "GET /users/me": lambda: self.http.get("/users/me", headers=me),
            "POST /auth/token": lambda: login(self.http, ANN),
            "POST /users": lambda: register(self.http, f"bob.{time.monotonic_ns()}@example.com"),
            **recovery_calls(self.http),
            **refresh_call(self.http),
        }

    def assert_unavailable(self, token: str) -> None:
        for name, call in self.calls(token).items():
            started = time.monotonic()
            response = call()
            assert_unavailable(name, response, time.monotonic() - started)
        assert self.http.get("/health").status_code == 200

    def assert_served(self, token: str) -> None:
        """Every call succeeds once the database is back, without a restart."""
        deadline = time.monotonic() + RECOVERY_DEADLINE_SECONDS
        while (ready := self.http.get("/health/ready")).status_code != 200:
            assert ready.status_code == 503, ready.text
            assert time.monotonic() < deadline, "not ready again after the deadline"
            time.sleep(0.5)
        statuses = {name: call().status_code for name, call in self.calls(token).items()}
        assert statuses == {
            "GET /health/ready": 200,
            "GET /users/me": 200,
            "POST /auth/token": 200,
            "POST /users": 201,
            "POST /auth/password/forgot": 202,
            "POST /auth/password/reset": 400,  # a token never issued
            "POST /auth/verify-email/request": 202,
            "POST /auth/verify-email": 400,
            "POST /auth/token (refresh)": 400,  # a token never issued
        }


@pytest.fixture(scope="module")
def app(app_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    server = start_server(app_database, tmp_path_factory.mktemp("refusals"))
    try:
        with httpx.Client(base_url=server.base_url, timeout=CLIENT_TIMEOUT_SECONDS) as http:
            yield App(server, http)
    finally:
        server_process.stop(server)


def assert_quiet_log(server: ServerProcess, since: int) -> None:
    """A one-line warning per refused request; no traceback, no ASGI error."""
    assert_no_traceback(server, since)
    logged = server.output(since)
    assert "Exception in ASGI application" not in logged, logged[-8000:]
    assert "database unavailable" in logged, logged[-8000:]


@pytest.mark.parametrize("refusal", REFUSALS)
def test_a_refused_connection_answers_503_and_heals_once_allowed(
    refusal: str, app: App, pg_cluster: Cluster
) -> None:
    refuse, allow = REFUSALS[refusal]
    token, since = app.signed_in(), app.server.output_size()
    try:
        superuser(pg_cluster, refuse)
        end_connections(pg_cluster)  # the pools must open new connections
        app.assert_unavailable(token)
    finally:
        superuser(pg_cluster, allow)
    app.assert_served(token)
    assert app.server.process.poll() is None
    assert_quiet_log(app.server, since)


def test_a_dropped_database_answers_503_and_heals_once_recreated(
    app: App, app_database: str, pg_cluster: Cluster
) -> None:
    token, since = app.signed_in(), app.server.output_size()
    pid = app.server.process.pid
    drop_database(pg_cluster)
    try:
        app.assert_unavailable(token)
    finally:
        create_database(pg_cluster, app_database)
    app.assert_served(app.signed_in())
    # Ann's first row went with the database: the old token is refused, not a 500.
    me = app.http.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401, me.text
    assert app.server.process.pid == pid
    assert_quiet_log(app.server, since)
