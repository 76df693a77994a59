"""PostgreSQL goes away while a real server runs, and comes back.

A real `uvicorn` process serves a throwaway cluster (conftest.py) that the
tests stop, start and restart. While the database is unreachable every
endpoint that needs it answers 503 with `Retry-After` and a JSON body,
quickly; /health stays 200 and /health/ready says 503. When the database is
back the same process serves again, without a restart.
"""

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from app.core.value_objects import ID
from app.infra.api.errors import DATABASE_UNAVAILABLE
from app.infra.auth.jwt_token_issuer import JwtTokenIssuer
from app.infra.clock import SystemClock
from app.infra.db.engine import create_engine, create_sessionmaker
from app.infra.db.unit_of_work import SqlUserUnitOfWork
from tests import server_process
from tests.conftest import TEST_SECRET, make_settings
from tests.faults.conftest import Cluster
from tests.integration.helpers import a_user
from tests.server_process import ServerProcess

PASSWORD = "correct-horse-battery"
# The account the repeated login calls use: not the bearer's, whose session a
# login would end once the account has MAX_SESSIONS_PER_USER of them.
LOGIN_EMAIL = "login@example.com"
# Hang checks, not performance targets: with 2 s connect and pool timeouts a
# 503 comes within a few seconds; a hang would take the client's 60 s.
FAIL_FAST_SECONDS = 10.0
RECOVERY_DEADLINE_SECONDS = 20.0
STARTUP_DEADLINE_SECONDS = 30.0
CLIENT_TIMEOUT_SECONDS = 60.0
# The recovery endpoints are called again and again here: their per-client
# limit (tests/api/test_recovery.py) must not be what answers.
RECOVERY_REQUESTS_PER_HOUR = "1000000"
# Calls with a token never issued: a database that is up answers them 400.
TOKEN_NEVER_ISSUED = {
    "POST /auth/password/reset",
    "POST /auth/verify-email",
    "POST /auth/token (refresh)",
}
# RFC 6749 §5.2's shape, at the token and revocation endpoints only.
OAUTH_CALLS = ("POST /auth/token", "POST /auth/revoke")


def start_server(database_url: str, workdir: Path, connect_timeout: float = 2) -> ServerProcess:
    """A healthy server on the database, or a failed test (the server stopped)."""
    env = server_process.app_env(
        database_url,
        DB_POOL_SIZE="5",
        DB_CONNECT_TIMEOUT_SECONDS=str(connect_timeout),
        DB_POOL_TIMEOUT_SECONDS="2",
        RECOVERY_REQUESTS_PER_HOUR=RECOVERY_REQUESTS_PER_HOUR,
    )
    (port,) = server_process.free_ports(1)
    server = server_process.start_uvicorn(env, port, workdir)
    try:
        server_process.wait_until_healthy(server, STARTUP_DEADLINE_SECONDS)
    except BaseException:
        server_process.stop(server)
        raise
    return server


@dataclass
class Service:
    server: ServerProcess
    http: httpx.Client
    user_token: str
    admin_token: str

    def bearer(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def calls(self) -> dict[str, Callable[[], httpx.Response]]:
        """One request per kind of database use: the batched reader (fast
        path and dependency), a write, the login path with its throttle, the
        sessions of a user, a refresh token's look-up (revoke, and the refresh
        grant on its own pool), and each recovery
        endpoint (the per-client counter, a recorded request, a one-time
        token's look-up)."""
        user, admin = self.user_token, self.admin_token
        return {
            **recovery_calls(self.http),
            **refresh_call(self.http),
            "GET /users/me": lambda: self.http.get("/users/me", headers=self.bearer(user)),
            "POST /users": lambda: register(self.http, f"{uuid.uuid4().hex[:12]}@example.com"),
            "POST /auth/token": lambda: login(self.http, LOGIN_EMAIL),
            "GET /users": lambda: self.http.get("/users", headers=self.bearer(admin)),
            "GET /users/me/sessions": lambda: self.http.get(
                "/users/me/sessions", headers=self.bearer(user)
            ),
            # A token never issued: looked up all the same, and 200 when the database answers.
            "POST /auth/revoke": lambda: self.http.post(
                "/auth/revoke", data={"token": uuid.uuid4().hex}
            ),
        }


def refresh_call(http: httpx.Client) -> dict[str, Callable[[], httpx.Response]]:
    """A refresh (its own path to the database, apart from the main pool) with
    a token never issued: 400 when the database answers."""
    form = {"grant_type": "refresh_token", "refresh_token": uuid.uuid4().hex}
    return {"POST /auth/token (refresh)": lambda: http.post("/auth/token", data=form)}


def recovery_calls(http: httpx.Client) -> dict[str, Callable[[], httpx.Response]]:
    """The four recovery endpoints (v2): 202, or 400 for a token never issued,
    when the database answers."""
    email = {"email": "ann@example.com"}
    token = {"token": uuid.uuid4().hex}
    return {
        "POST /auth/password/forgot": lambda: http.post("/auth/password/forgot", json=email),
        "POST /auth/password/reset": lambda: http.post(
            "/auth/password/reset", json={**token, "new_password": PASSWORD}
        ),
        "POST /auth/verify-email/request": lambda: http.post(
            "/auth/verify-email/request", json=email
        ),
        "POST /auth/verify-email": lambda: http.post("/auth/verify-email", json=token),
    }


def served(name: str, status: int | str) -> bool:
    """The answer of a database that is up."""
    if name in TOKEN_NEVER_ISSUED:
        return status == 400
    return isinstance(status, int) and 200 <= status < 300


def register(http: httpx.Client, email: str) -> httpx.Response:
    return http.post("/users", json={"name": "Ann", "email": email, "password": PASSWORD})


def login(http: httpx.Client, email: str) -> httpx.Response:
    return http.post("/auth/token", data={"username": email, "password": PASSWORD})


def refresh(http: httpx.Client, refresh_token: str) -> httpx.Response:
    return http.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token}
    )


async def _promote(url: str, email: str) -> None:
    connection = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        await connection.execute("UPDATE users SET role = 'admin' WHERE email = $1", email)
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def service(pg_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A server on the cluster, with a user and an admin logged in."""
    server = start_server(pg_cluster.url, tmp_path_factory.mktemp("outage"))
    try:
        with httpx.Client(base_url=server.base_url, timeout=CLIENT_TIMEOUT_SECONDS) as http:
            for email in ("ann@example.com", "root@example.com", LOGIN_EMAIL):
                assert register(http, email).status_code == 201
            asyncio.run(_promote(pg_cluster.url, "root@example.com"))
            tokens = [login(http, email) for email in ("ann@example.com", "root@example.com")]
            assert [t.status_code for t in tokens] == [200, 200], [t.text for t in tokens]
            user_token, admin_token = (t.json()["access_token"] for t in tokens)
            yield Service(server, http, user_token, admin_token)
    finally:
        server_process.stop(server)
        if not pg_cluster.is_running():  # a failed test must not leave it down
            pg_cluster.start()


def assert_unavailable(name: str, response: httpx.Response, elapsed: float) -> None:
    where = f"{name} -> {response.status_code} {response.text[:300]} in {elapsed:.1f}s"
    assert response.status_code == 503, where
    assert elapsed < FAIL_FAST_SECONDS, where
    assert int(response.headers["Retry-After"]) > 0, where
    assert "traceback" not in response.text.lower(), where
    body = response.json()
    if name.startswith(OAUTH_CALLS):  # RFC 6749 §5.2 at the token and revocation endpoints
        assert body["error"] == "temporarily_unavailable", where
        assert body["error_description"], where
        assert response.headers["Cache-Control"] == "no-store", where
    else:
        assert set(body) == {"detail"}, where
        assert isinstance(body["detail"], str), where


def all_served(service: Service) -> dict[str, int]:
    """Every call's status, once all answer 2xx; fails after the deadline."""
    deadline = time.monotonic() + RECOVERY_DEADLINE_SECONDS
    seen: dict[str, list[int]] = {}
    while True:
        statuses = {name: call().status_code for name, call in service.calls().items()}
        for name, status in statuses.items():
            seen.setdefault(name, []).append(status)
        unexpected = {n: s for n, s in statuses.items() if s != 503 and not served(n, s)}
        assert not unexpected, f"while recovering: {unexpected}"
        if all(served(name, status) for name, status in statuses.items()):
            return statuses
        assert time.monotonic() < deadline, f"not recovered after the deadline: {seen}"
        time.sleep(0.5)


def assert_no_traceback(server: ServerProcess, since: int) -> None:
    logged = server.output(since)
    assert "Traceback" not in logged, logged[-8000:]
    assert "ERROR" not in logged, logged[-8000:]


def test_served_while_the_database_is_up(service: Service) -> None:
    me = service.http.get("/users/me", headers=service.bearer(service.user_token))
    assert me.status_code == 200, me.text
    assert me.json()["email"] == "ann@example.com"
    assert service.calls()["GET /users"]().status_code == 200
    assert service.http.get("/health/ready").status_code == 200


def test_an_outage_answers_503_quickly_and_heals_without_a_restart(
    service: Service, pg_cluster: Cluster
) -> None:
    pid, since = service.server.process.pid, service.server.output_size()
    all_served(service)  # the pools hold live connections when the database goes
    refresh_token = login(service.http, "ann@example.com").json()["refresh_token"]

    pg_cluster.stop("fast")
    for name, call in service.calls().items():
        started = time.monotonic()
        response = call()
        assert_unavailable(name, response, time.monotonic() - started)
    started = time.monotonic()
    response = refresh(service.http, refresh_token)
    assert_unavailable("POST /auth/token (refresh)", response, time.monotonic() - started)
    assert service.http.get("/health").status_code == 200
    started = time.monotonic()
    ready = service.http.get("/health/ready")
    assert_unavailable("GET /health/ready", ready, time.monotonic() - started)

    pg_cluster.start()
    all_served(service)
    assert service.http.get("/health/ready").status_code == 200
    # The refresh refused during the outage spent nothing: the token still works.
    assert refresh(service.http, refresh_token).status_code == 200
    assert service.server.process.poll() is None
    assert service.server.process.pid == pid
    assert_no_traceback(service.server, since)


def test_a_restart_while_serving_heals(service: Service, pg_cluster: Cluster) -> None:
    pid, since = service.server.process.pid, service.server.output_size()
    all_served(service)

    # Requests keep coming while the database crashes (every connection dies)
    # and starts again (crash recovery, "the database system is starting up").
    statuses: list[tuple[str, int]] = []
    stop = threading.Event()

    def keep_calling() -> None:
        with httpx.Client(base_url=service.server.base_url, timeout=CLIENT_TIMEOUT_SECONDS) as http:
            caller = Service(service.server, http, service.user_token, service.admin_token)
            while not stop.is_set():
                for name, call in caller.calls().items():
                    try:
                        statuses.append((name, call().status_code))
                    except httpx.TransportError as exc:
                        statuses.append((name, type(exc).__name__))  # type: ignore[arg-type]

    caller = threading.Thread(target=keep_calling)
    caller.start()
    try:
        time.sleep(0.3)
        pg_cluster.restart("immediate")
        time.sleep(0.3)
    finally:
        stop.set()
        caller.join(CLIENT_TIMEOUT_SECONDS)
    unexpected = [
        (name, status) for name, status in statuses if status != 503 and not served(name, status)
    ]
    assert not unexpected, (unexpected, service.server.output(since)[-8000:])
    assert statuses

    # The first requests may meet dead pooled connections (503), then 200s.
    all_served(service)
    assert service.http.get("/health/ready").status_code == 200
    assert service.server.process.pid == pid
    assert service.server.process.poll() is None
    assert_no_traceback(service.server, since)


def test_a_database_that_does_not_answer_times_out(tmp_path: Path) -> None:
    """A black hole (accepts nothing, answers nothing): the connect timeout
    bounds the wait, so requests get 503 rather than hanging."""
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(0)  # never accepted: the handshake completes, no reply follows
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{hole.getsockname()[1]}/postgres"
        server = start_server(url, tmp_path, connect_timeout=1)
        try:
            with httpx.Client(base_url=server.base_url, timeout=CLIENT_TIMEOUT_SECONDS) as http:
                calls: dict[str, Callable[[], httpx.Response]] = {
                    "GET /users/me": lambda: http.get(
                        "/users/me", headers={"Authorization": f"Bearer {_any_token()}"}
                    ),
                    "POST /users": lambda: register(http, "ann@example.com"),
                    "POST /auth/token": lambda: login(http, "ann@example.com"),
                    "GET /health/ready": lambda: http.get("/health/ready"),
                    **recovery_calls(http),
                    **refresh_call(http),
                }
                for name, call in calls.items():
                    started = time.monotonic()
                    response = call()
                    assert_unavailable(name, response, time.monotonic() - started)
                assert http.get("/health").status_code == 200
            assert_no_traceback(server, 0)
        finally:
            server_process.stop(server)


def _any_token() -> str:
    """A well-signed token (of a session nobody can look up), so the request
    gets as far as the database."""
    issuer = JwtTokenIssuer(TEST_SECRET, "HS256", 30, SystemClock())
    return issuer.issue(a_user(), ID.new()).token


async def test_an_outage_inside_a_unit_of_work_writes_nothing(pg_cluster: Cluster) -> None:
    """The database goes away between two statements of one unit of work:
    the error is one the API answers with 503, and once the database is
    back the first statement's row is not there."""
    settings = make_settings(
        pg_cluster.url, DB_CONNECT_TIMEOUT_SECONDS=2, DB_POOL_TIMEOUT_SECONDS=2
    )
    engine = create_engine(settings)
    ann, bob = a_user("ann.uow@example.com"), a_user("bob.uow@example.com")

    async def add_both_across_an_outage() -> None:
        async with SqlUserUnitOfWork(create_sessionmaker(engine)) as uow:
            await uow.users.add(ann)
            await asyncio.to_thread(pg_cluster.stop, "immediate")
            await uow.users.add(bob)
            await uow.commit()

    try:
        with pytest.raises(DATABASE_UNAVAILABLE):
            await add_both_across_an_outage()
        await asyncio.to_thread(pg_cluster.start)
        async with SqlUserUnitOfWork(create_sessionmaker(engine)) as uow:
            assert await uow.users.get_by_email(ann.email) is None
            assert await uow.users.get_by_email(bob.email) is None
    finally:
        if not pg_cluster.is_running():
            pg_cluster.start()
        await engine.dispose()
