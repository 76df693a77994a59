"""Property-based run of the whole OpenAPI schema (schemathesis) against the ASGI app.

Every operation is called with generated input, valid and invalid, without
credentials, as a normal user and as an admin, and fails on any 5xx, on a
status code the schema does not declare, and on a body, content type or
declared header that does not match the schema. It runs on each backend of
the `database_url` fixture (SQLite and PostgreSQL: about 15 s each on two cores).

Bounded for `make test`: a fixed number of examples per operation, derandomized
(the same cases on every run, so CI failures reproduce), no example database.

Every example gets a caller of its own: a freshly registered user, or a
freshly created admin, logged in through the API. An example that deletes,
renames, deactivates or re-passwords its caller therefore never leaves the
next one with a dead token (bcrypt runs at 4 rounds in tests: a few ms each).
"""

import uuid
from collections.abc import Iterator
from typing import Any, Literal, cast

import pytest
import schemathesis
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.config import Settings
from app.core.dtos import RegisterInput
from app.core.usecases.create_admin import CreateAdmin
from app.infra.clock import SystemClock
from app.infra.composition import recovery_policy
from app.infra.db.engine import create_engine, create_sessionmaker
from app.infra.db.unit_of_work import SqlUserUnitOfWork
from app.infra.security.bcrypt_hasher import BcryptPasswordHasher
from app.main import create_app
from tests.conftest import make_settings, truncate

Identity = Literal["anonymous", "user", "admin"]
PASSWORD = "correct-horse-battery"
MAX_EXAMPLES = 25
# Far above what a run sends, so the recovery routes are fuzzed past their
# per-client limit (its 429 is declared all the same; tests/api/test_recovery.py
# checks it).
RECOVERY_REQUESTS_PER_HOUR = 1_000_000
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
]


class Identities:
    """Makes a fresh, logged-in caller per example.

    The app runs on schemathesis's event loop thread (it starts the lifespan
    itself), so the API is reached through schemathesis's ASGI client. Admins
    are created as the CLI creates them (`CreateAdmin`, as tests/api/helpers.py
    does), with an engine and hasher of their own on `portal`'s loop: the app's
    engine belongs to the other loop and cannot be shared.
    """

    def __init__(self, app: FastAPI, portal: BlockingPortal, create_admin: CreateAdmin) -> None:
        self.app, self.portal, self.create_admin = app, portal, create_admin

    def headers(self, identity: Identity) -> dict[str, str]:
        if identity == "anonymous":
            return {}
        email = f"fuzz-{identity}-{uuid.uuid4().hex}@example.com"
        with asgi.get_client(cast("asgi.ASGIApp", self.app)) as client:
            if identity == "admin":
                self.portal.call(self.create_admin.execute, RegisterInput(email, PASSWORD, "Admin"))
            else:
                body = {"name": "Fuzz", "email": email, "password": PASSWORD}
                registered = client.post("/users", json=body)
                assert registered.status_code == 201, registered.text
            login = client.post("/auth/token", data={"username": email, "password": PASSWORD})
            assert login.status_code == 200, login.text
        return {"Authorization": f"Bearer {login.json()['access_token']}"}


@pytest.fixture(scope="module")
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as running:
        yield running


@pytest.fixture(scope="module")
def fuzz_app(database_url: str, portal: BlockingPortal) -> Iterator[FastAPI]:
    """The app on an empty database; schemathesis starts its lifespan on first use."""
    settings = make_settings(database_url, RECOVERY_REQUESTS_PER_HOUR=RECOVERY_REQUESTS_PER_HOUR)
    portal.call(_empty_tables, settings)
    yield create_app(settings)
    asgi.shutdown_lifespans()


@pytest.fixture(scope="module")
def identities(
    fuzz_app: FastAPI, database_url: str, portal: BlockingPortal
) -> Iterator[Identities]:
    settings = make_settings(database_url)
    engine = create_engine(settings)
    hasher = BcryptPasswordHasher(settings.BCRYPT_ROUNDS, 1, settings.HASH_QUEUE_TIMEOUT_SECONDS)
    create_admin = CreateAdmin(
        SqlUserUnitOfWork(create_sessionmaker(engine)),
        hasher,
        SystemClock(),
        recovery_policy(settings),
    )
    yield Identities(fuzz_app, portal, create_admin)
    hasher.close()
    portal.call(engine.dispose)


async def _empty_tables(settings: Settings) -> None:
    engine = create_engine(settings)
    try:
        await truncate(engine)
    finally:
        await engine.dispose()


# The schema does not depend on the database: read it from an app that is never
# started. Each test calls the app of its backend (`case.call(app=...)`).
# (`schemathesis.pytest.from_fixture` would load it per backend, but its lazy
# runner reads `Function._nodeid`, which pytest 9 no longer has.)
SPEC = create_app(make_settings("sqlite+aiosqlite://")).openapi()
schema = schemathesis.openapi.from_dict(SPEC)
# The routes of sessions and refresh tokens (v2): fuzzed like every other.
SESSION_ROUTES = {
    ("post", "/auth/token"),
    ("post", "/auth/revoke"),
    ("post", "/auth/logout"),
    ("post", "/auth/logout/all"),
    ("get", "/users/me/sessions"),
    ("delete", "/users/me/sessions/{session_id}"),
    ("delete", "/users/{user_id}/sessions"),
}
# The routes of password recovery and email verification (v2): likewise.
RECOVERY_ROUTES = {
    ("post", "/auth/password/forgot"),
    ("post", "/auth/password/reset"),
    ("post", "/auth/verify-email/request"),
    ("post", "/auth/verify-email"),
}


@pytest.mark.parametrize("routes", [SESSION_ROUTES, RECOVERY_ROUTES], ids=["sessions", "recovery"])
def test_the_v2_routes_are_in_the_fuzzed_schema(routes: set[tuple[str, str]]) -> None:
    operations = {(method, path) for path, item in SPEC["paths"].items() for method in item}
    assert operations >= routes, routes - operations


@pytest.mark.parametrize("identity", ["anonymous", "user", "admin"])
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_operation_conforms(
    case: schemathesis.Case[Any],
    identity: Identity,
    identities: Identities,
    fuzz_app: FastAPI,
) -> None:
    response = case.call(app=fuzz_app, headers=identities.headers(identity))
    case.validate_response(response, checks=CHECKS)
