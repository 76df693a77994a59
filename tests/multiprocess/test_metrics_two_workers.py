"""GET /metrics of one `uvicorn --workers 2` server (the client's multiprocess
mode, as `make serve` runs it): whichever worker answers the scrape, the
counters moved by exactly the requests sent, to both workers; and the
exposition passes `promtool check metrics` (Debian's `prometheus` package;
required with CI=true).

The server is a real `uvicorn` subprocess, so it does not count towards coverage.
"""

import asyncio
import glob
import json
import os
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from app.infra.metrics import FLUSH_SECONDS
from tests import server_process
from tests.conftest import IN_CI
from tests.server_process import ServerProcess

PASSWORD = "correct-horse-battery"
MAX_FAILURES = 2
REQUEST_TIMEOUT_SECONDS = 60.0
# Each worker counts its requests within FLUSH_SECONDS: a scrape shows them all after that.
SETTLE_DEADLINE_SECONDS = 10 * FLUSH_SECONDS + 10
ME_BATCH = 60
NOT_SENT = {("route", "/metrics"), ("route", "/health")}
COUNTED = {
    "http_request_duration_seconds_count",
    "auth_logins_total",
    "auth_refreshes_total",
    "password_hash_queue_wait_seconds_count",
}

Key = tuple[str, frozenset[tuple[str, str]]]


@pytest.fixture(scope="module")
def multiproc_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prometheus-multiproc")


@pytest.fixture(scope="module")
def server(
    postgres_url: str, multiproc_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = server_process.app_env(
        postgres_url,
        DB_POOL_SIZE="5",
        METRICS_ENABLED="true",
        LOGIN_MAX_FAILURES=str(MAX_FAILURES),
        REFRESH_TOKEN_REUSE_INTERVAL_SECONDS="0",
        PROMETHEUS_MULTIPROC_DIR=str(multiproc_dir),
    )
    port = server_process.free_ports(1)[0]
    workdir = tmp_path_factory.mktemp("metrics-server")
    started = server_process.start_uvicorn(env, port, workdir, workers=2)
    try:
        server_process.wait_until_healthy(started)
        yield started
    finally:
        server_process.stop(started)


def parse(exposition: str) -> dict[Key, float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def requests_key(route: str, method: str, status: str) -> Key:
    labels = {"route": route, "method": method, "status": status}
    return ("http_request_duration_seconds_count", frozenset(labels.items()))


def outcome_key(name: str, outcome: str) -> Key:
    return (name, frozenset({("outcome", outcome)}))


async def test_a_scrape_counts_every_request_of_both_workers(
    server: ServerProcess, clean_engine: AsyncEngine, multiproc_dir: Path
) -> None:
    # No keep-alive: every request on a new connection, which either worker may accept.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=REQUEST_TIMEOUT_SECONDS, limits=limits
    ) as http:

        async def scrape() -> dict[Key, float]:
            response = await http.get("/metrics")
            assert response.status_code == 200, response.text
            return parse(response.text)

        before = await scrape()
        sent: Counter[Key] = Counter()

        async def call(route: str, method: str, path: str, **kwargs: object) -> httpx.Response:
            response = await http.request(method, path, **kwargs)  # type: ignore[arg-type]
            sent[requests_key(route, method, f"{response.status_code // 100}xx")] += 1
            return response

        for email in ("ann@example.com", "bob@example.com"):
            user = {"name": "Ann", "email": email, "password": PASSWORD}
            assert (await call("/users", "POST", "/users", json=user)).status_code == 201
        form = {"username": "ann@example.com", "password": PASSWORD}
        tokens = await call("/auth/token", "POST", "/auth/token", data=form)
        assert tokens.status_code == 200, tokens.text
        sent[outcome_key("auth_logins_total", "success")] += 1
        for _ in range(MAX_FAILURES):
            wrong = {"username": "bob@example.com", "password": "wrong-password-1"}
            assert (await call("/auth/token", "POST", "/auth/token", data=wrong)).status_code == 400
            sent[outcome_key("auth_logins_total", "invalid")] += 1
        locked = {"username": "bob@example.com", "password": PASSWORD}
        assert (await call("/auth/token", "POST", "/auth/token", data=locked)).status_code == 429
        sent[outcome_key("auth_logins_total", "locked")] += 1
        # Two registrations, a login, two wrong passwords; the locked login hashes nothing.
        sent[("password_hash_queue_wait_seconds_count", frozenset())] += 5

        access, refresh = tokens.json()["access_token"], tokens.json()["refresh_token"]
        bearer = {"Authorization": f"Bearer {access}"}
        # Batches until each worker has counted some (which one accepts a
        # connection is the kernel's choice): the exact comparison below then
        # covers both workers' files.
        deadline = time.monotonic() + SETTLE_DEADLINE_SECONDS
        while True:
            me = [call("/users/me", "GET", "/users/me", headers=bearer) for _ in range(ME_BATCH)]
            assert {r.status_code for r in await asyncio.gather(*me)} == {200}
            await asyncio.sleep(FLUSH_SECONDS + 0.2)
            if _workers_that_served(multiproc_dir) == 2 or time.monotonic() > deadline:
                break
        assert (await call("/users/me", "GET", "/users/me")).status_code == 401
        assert (await call("unmatched", "GET", "/no/such/page")).status_code == 404

        for presented, status, outcome in ((refresh, 200, "success"), (refresh, 400, "reused")):
            grant = {"grant_type": "refresh_token", "refresh_token": presented}
            answer = await call("/auth/token", "POST", "/auth/token", data=grant)
            assert answer.status_code == status, answer.text
            sent[outcome_key("auth_refreshes_total", outcome)] += 1

        # Scrapes count too, and so do the fixture's readiness probes of /health,
        # which a worker may count after `before` (within FLUSH_SECONDS): not ours.
        deadline = time.monotonic() + SETTLE_DEADLINE_SECONDS
        while True:
            after = await scrape()
            moved = {key: after.get(key, 0) - before.get(key, 0) for key in set(after) | set(sent)}
            moved = {
                key: value
                for key, value in moved.items()
                if value and key[0] in COUNTED and not NOT_SENT & key[1]
            }
            if moved == sent or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)

    assert _workers_that_served(multiproc_dir) == 2
    assert moved == dict(sent)
    _promtool_accepts(await _exposition(server))


def _workers_that_served(multiproc_dir: Path) -> int:
    """Worker processes whose own file holds a request of /users/me."""
    serving = 0
    for path in glob.glob(os.path.join(multiproc_dir, "histogram_*.db")):
        for key, value, _, _ in MmapedDict.read_all_values_from_file(path):  # type: ignore[no-untyped-call]
            _, sample, labels, _ = json.loads(key)
            if sample.endswith("_bucket") and labels.get("route") == "/users/me" and value:
                serving += 1
                break
    return serving


async def _exposition(server: ServerProcess) -> str:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        return (await http.get("/metrics")).text


def _promtool_accepts(exposition: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if IN_CI:
            pytest.fail("promtool is missing (apt-get install prometheus); CI=true requires it")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
