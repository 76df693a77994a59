"""The two servers under test, both one uvicorn worker with the same flags."""

import json
import re
import secrets
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.config import Settings
from bench import mail_sink
from bench.procs import (
    BenchError,
    Popen,
    Processes,
    child_env,
    peak_rss_kib,
    pinned,
    serves_alone,
)

# Lines a quiet (LOG_LEVEL=WARNING) server should not print; uvicorn's own
# start-up lines are INFO and do not match.
_TROUBLE = re.compile(r"WARNING|ERROR|CRITICAL|Traceback|Exception")
# A JSON line (ENV=prod) is trouble by its level or its traceback, not by the
# words it holds: an access line whose path says ERROR is not one.
_TROUBLE_LEVELS = frozenset({"WARNING", "ERROR", "CRITICAL"})
# Not a setting but read from the environment by prometheus-client: a stray one
# in the caller's shell must not switch a server's metrics to multiprocess mode.
_PROMETHEUS_MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class Server:
    name: str
    process: Popen
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ensure_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(
                f"{self.name} exited with status {self.process.returncode};"
                f" its last log lines:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def peak_rss_kib(self) -> int:
        """VmHWM of the serving process, checked again to be the serving one."""
        self.ensure_alive()
        if not serves_alone(self.pid, self.port):
            raise BenchError(f"{self.name}: pid {self.pid} no longer serves port {self.port} alone")
        return peak_rss_kib(self.pid)

    def trouble_lines(self) -> list[str]:
        """Warnings, errors and tracebacks it logged: under load they are findings.

        Read a line at a time: a LOG_LEVEL=INFO server's log holds an access
        line per request, hundreds of thousands, none of them trouble.
        """
        if not self.log.exists():
            return []
        with self.log.open(errors="replace") as lines:
            return [
                line.rstrip("\n")
                for line in lines
                if _TROUBLE.search(line) and _is_trouble(line.strip())
            ]


def _is_trouble(line: str) -> bool:
    """A line the pattern matched: a JSON record only if it is a warning or
    worse or holds an exception; any other line (uvicorn's, a traceback's) is."""
    if not line.startswith("{"):
        return True
    try:
        record = json.loads(line)
    except ValueError:
        return True
    if not isinstance(record, dict):
        return True
    return record.get("level") in _TROUBLE_LEVELS or "exception" in record


def service_env(db_url: str, bcrypt_rounds: int) -> dict[str, str]:
    """Production settings, and nothing else from our environment; mail goes to
    bench.mail_sink.

    Every setting the service reads is dropped from the inherited environment
    first, so a stray HASH_WORKERS or DB_URL in the caller's shell cannot change
    what is measured; the servers also run in a scratch directory, so no .env
    is read either.
    """
    return child_env(
        {
            "ENV": "prod",
            "DB_URL": db_url,
            "JWT_SECRET_KEY": secrets.token_urlsafe(48),
            "BCRYPT_ROUNDS": str(bcrypt_rounds),
            # Also silences the service's own access-log middleware (INFO).
            "LOG_LEVEL": "WARNING",
            # Production refuses the console backend: mail goes out over SMTP.
            "EMAIL_BACKEND": "smtp",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(mail_sink.smtp_port()),
            "SMTP_STARTTLS": "false",
            "EMAILS_FROM_EMAIL": "bench@example.com",
            "FRONTEND_URL": "https://app.example.com",
            # The per-client limit would answer 429 after 20 forgot requests from
            # wrk's one address: the bench measures the request's work, the
            # limit's count included, not the limit's refusals.
            "RECOVERY_REQUESTS_PER_HOUR": "10000000",
        },
        drop=[*Settings.model_fields, _PROMETHEUS_MULTIPROC_DIR],
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_uvicorn(
    processes: Processes,
    name: str,
    app_args: list[str],
    *,
    env: dict[str, str],
    workdir: Path,
    cpu: int | None,
    ready_path: str = "/health",
    timeout: float = 60,
) -> Server:
    """Starts `uvicorn <app_args>` like production (one worker, no reload, no access
    log) and returns once it answers 200 on `ready_path`."""
    port = free_port()
    command = pinned(
        cpu,
        [
            sys.executable,
            "-m",
            "uvicorn",
            *app_args,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-access-log",
        ],
    )
    log = workdir / f"{name}.log"
    with log.open("wb") as log_file:
        process = processes.start(command, env=env, cwd=workdir, stdout=log_file)
    server = Server(name, process, port, log)
    _wait_ready(server, ready_path, timeout)
    if not serves_alone(server.pid, port):
        raise BenchError(f"{name}: pid {server.pid} is not the only process serving port {port}")
    return server


def _wait_ready(server: Server, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.url, timeout=2) as client:
        while time.monotonic() < deadline:
            server.ensure_alive()
            try:
                if client.get(path).status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            time.sleep(0.1)
    raise BenchError(
        f"{server.name} did not answer 200 on {path} within {timeout:.0f}s;"
        f" its last log lines:\n{server.log_tail()}"
    )
