"""Runs wrk with one of the Lua scripts and reads the JSON line its done() prints."""

import json
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import BenchError, Popen, Processes, child_env, pinned

SCRIPTS = Path(__file__).resolve().parent
GET_WITH_TOKEN = SCRIPTS / "get_with_token.lua"
LOGIN = SCRIPTS / "login.lua"
REFRESH = SCRIPTS / "refresh.lua"
POST_JSON = SCRIPTS / "post_json.lua"
_MARKER = "BENCH_JSON "


@dataclass(frozen=True)
class Load:
    """One wrk run: where, which script, how hard and for how long."""

    url: str
    script: Path
    connections: int
    duration_s: int
    script_env: Mapping[str, str] = field(default_factory=dict)  # read by the script
    threads: int = 1
    # Above the service's 30 s hashing-queue timeout: a slow login must come back
    # as the service's 503, not vanish as a wrk timeout (wrk drops latencies
    # above --timeout from its percentiles).
    timeout_s: int = 60


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    errors: dict[str, int]  # connect, read, write, timeout, and status (>= 400)
    latency_ms: dict[str, float]  # min, mean, max, p50, p90, p99
    statuses: dict[int, int]  # per status code, for scripts that count them
    # Share of the server's core other processes used meanwhile (None: not pinned).
    other_load: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    def rate_of(self, status: int) -> float:
        return self.statuses.get(status, 0) / self.duration_s if self.duration_s else 0.0

    @property
    def not_ok(self) -> int:
        """Non-2xx responses: counted per status when the script does, else wrk's >= 400 count."""
        if self.statuses:
            return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)
        return self.errors["status"]

    @property
    def socket_errors(self) -> int:
        return sum(n for kind, n in self.errors.items() if kind != "status")

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "duration_s": round(self.duration_s, 3),
            "rps": round(self.rps, 2),
            "non_2xx": self.not_ok,
            "errors": self.errors,
            "latency_ms": self.latency_ms,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "other_load_on_server_core": (
                None if self.other_load is None else round(self.other_load, 3)
            ),
        }


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise BenchError("wrk is not installed (apt-get install wrk)")
    return path


def start_wrk(processes: Processes, load: Load, cpu: int | None, workdir: Path) -> Popen:
    command = pinned(
        cpu,
        [
            ensure_wrk(),
            f"-t{load.threads}",
            f"-c{load.connections}",
            f"-d{load.duration_s}s",
            f"--timeout={load.timeout_s}s",
            "-s",
            str(load.script),
            load.url,
        ],
    )
    return processes.start(
        command, env=child_env(load.script_env), cwd=workdir, stdout=subprocess.PIPE
    )


def collect(process: Popen, load: Load) -> WrkResult:
    """Waits for a started wrk and parses its result."""
    try:
        out, err = process.communicate(timeout=load.duration_s + load.timeout_s + 30)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk on {load.url} did not finish") from exc
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    lines = [line for line in stdout.splitlines() if line.startswith(_MARKER)]
    if process.returncode != 0 or not lines:
        raise BenchError(
            f"wrk on {load.url} failed ({process.returncode}):\n{stdout}{stderr}".rstrip()
        )
    return _parse(json.loads(lines[-1].removeprefix(_MARKER)))


def run_wrk(processes: Processes, load: Load, cpu: int | None, workdir: Path) -> WrkResult:
    return collect(start_wrk(processes, load, cpu, workdir), load)


def _parse(data: dict[str, Any]) -> WrkResult:
    return WrkResult(
        requests=int(data["requests"]),
        duration_s=data["duration_us"] / 1e6,
        errors={kind: int(n) for kind, n in data["errors"].items()},
        latency_ms={name: round(us / 1000, 3) for name, us in data["latency_us"].items()},
        statuses={int(status): int(n) for status, n in data["statuses"].items()},
    )
