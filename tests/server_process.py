"""A real `uvicorn` server process for tests that need one.

Used by the multi-process, fault-injection and browser tests: free ports, an
environment with no app setting leaking in from the caller, the process
itself (its output in a log file), a wait for /health and a stop; several
at once, with a client each, for the multi-process tests. Servers run in a
subprocess, so they do not count towards coverage.
"""

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from tests.conftest import ROOT, TEST_SECRET

STARTUP_DEADLINE_SECONDS = 60.0
SHUTDOWN_GRACE_SECONDS = 15.0
OUTPUT_TAIL_CHARS = 8000


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def output(self, since: int = 0) -> str:
        """What the server wrote (it logs warnings and errors only) from byte `since`."""
        with self.log.open("rb") as log:
            log.seek(since)
            return log.read().decode(errors="replace")

    def output_size(self) -> int:
        return self.log.stat().st_size


def free_ports(count: int) -> list[int]:
    """Distinct ports the OS has just handed out (held together, so they differ)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def clean_env(**settings: str) -> dict[str, str]:
    """The current environment without any app setting, plus `settings`.

    No setting leaks in from the caller's environment; the server runs in a
    scratch working directory (`start_uvicorn`), so no .env is read either.
    """
    env = {key: value for key, value in os.environ.items() if key not in Settings.model_fields}
    env.update(settings)
    return env


def app_env(database_url: str, **settings: str) -> dict[str, str]:
    """`clean_env` with the settings every test server shares (the test
    environment, the database, a test secret, fast hashing, warnings and
    errors only in the log), plus `settings`."""
    return clean_env(
        ENV="test",
        DB_URL=database_url,
        JWT_SECRET_KEY=TEST_SECRET,
        BCRYPT_ROUNDS="4",
        HASH_WORKERS="2",
        LOG_LEVEL="WARNING",
        **{"EMAIL_BACKEND": "memory", **settings},
    )


def start_uvicorn(
    env: dict[str, str], port: int, workdir: Path, *, workers: int = 1
) -> ServerProcess:
    """Starts the app under uvicorn on 127.0.0.1:`port`; returns without waiting for it."""
    log = workdir / f"server-{port}.log"
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "app.main:create_app",
        "--factory",
        "--app-dir",
        str(ROOT),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        # As the image and `make serve` run it.
        "--http",
        "h11",
        "--no-server-header",
    ]
    with log.open("wb") as sink:  # the child keeps its own descriptor
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=sink, stderr=sink)
    return ServerProcess(process, f"http://127.0.0.1:{port}", log)


def wait_until_healthy(server: ServerProcess, deadline_s: float = STARTUP_DEADLINE_SECONDS) -> None:
    """Returns once /health answers 200; fails the test, with the server's output,
    if the process exits or the deadline passes first."""
    deadline = time.monotonic() + deadline_s
    problem = "no answer yet"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            problem = f"exited with code {server.process.returncode}"
            break
        try:
            if httpx.get(f"{server.base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        time.sleep(0.1)
    pytest.fail(
        f"server at {server.base_url} did not become healthy ({problem}); its output:\n"
        f"{server.output()[-OUTPUT_TAIL_CHARS:]}",
        pytrace=False,
    )


def stop(server: ServerProcess, grace_s: float = SHUTDOWN_GRACE_SECONDS) -> None:
    """Terminates the server, and kills it if it has not exited after `grace_s`."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def serve(env: dict[str, str], workdir: Path, count: int = 2) -> Iterator[list[ServerProcess]]:
    """`count` healthy servers with this environment, for a fixture to yield
    from; stopped afterwards. Several on one database are what the
    multi-process tests need."""
    started: list[ServerProcess] = []
    try:
        for port in free_ports(count):
            started.append(start_uvicorn(env, port, workdir))
        for server in started:
            wait_until_healthy(server)
        yield started
    finally:
        for server in started:
            stop(server)


@asynccontextmanager
async def clients_of(
    servers: list[ServerProcess], timeout_s: float
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One client per server. Whatever the servers log meanwhile (warnings and
    errors, tracebacks of a 5xx included) is printed afterwards, so pytest
    shows it with a failure."""
    sizes = [server.output_size() for server in servers]
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=server.base_url, timeout=timeout_s)
            )
            for server in servers
        ]
    for server, size in zip(servers, sizes, strict=True):
        if logged := server.output(since=size):
            print(f"--- {server.base_url} logged:\n{logged}")
