"""What access lines and metrics cost GET /users/me, and whether they miss requests.

Two more servers of today's service, on the same database and core, each
with one setting changed from the service's (LOG_LEVEL=WARNING, metrics off):

- `service_info`: LOG_LEVEL=INFO, so every request writes an access line (a
  JSON line, ENV=prod) to its log file, its stdout redirected;
- `service_metrics`: METRICS_ENABLED=true, in the client's multiprocess mode
  (PROMETHEUS_MULTIPROC_DIR, a fresh directory), as `make serve` runs it.

The standard run measures them between its two runs of the service (A B C C
B A), so a drift of the machine weighs on every figure alike. Afterwards the
INFO server is stopped (it writes what is left) and its access lines of GET
/users/me are counted, and the METRICS server's count of them is scraped:
each must match the requests wrk completed against that server, warm-ups
included, give or take the requests in flight when each wrk stopped (served,
logged and counted, but not counted by wrk).
"""

import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from app.logger import ACCESS_LOGGER
from bench.api import Account, log_in
from bench.database import Database
from bench.harness import Bench
from bench.procs import BenchError, stop, wait_until_idle
from bench.report import Check, Row, Target, clean_run, target_row
from bench.servers import Server, service_env, start_uvicorn
from bench.wrk_runner import WrkResult

# The targets: requests/s with each on, over the service's without.
INFO_VS_WARNING_MIN = 0.9
METRICS_VS_NONE_MIN = 0.9

ME = "/users/me"
# GET /users/me requests a server gets outside wrk: log_in reads it once.
SET_UP_REQUESTS = 1
REQUESTS_METRIC = "http_request_duration_seconds_count"
# The logger of the writer's "log queue full: N lines dropped" line (app/logger.py).
LOG_WRITER_LOGGER = "app.logger"
RUN_NAMES = ("info_me", "info_me_2", "metrics_me", "metrics_me_2")
# After its graceful shutdown, uvicorn raises the signal it caught again, so a
# server stopped by SIGTERM ends by it (Popen's -15), having written its log.
STOPPED_CLEANLY = frozenset({0, -signal.SIGTERM})


@dataclass
class Observed:
    """A server of the service with one setting changed, the bench account logged
    in on it (its own JWT secret), and every wrk run made against it."""

    server: Server
    account: Account
    runs: list[WrkResult] = field(default_factory=list)
    in_flight_max: int = 0  # requests wrk may have left in flight, over all its runs

    def measure(self, bench: Bench) -> WrkResult:
        load = bench.get_load(self.server, ME, self.account, bench.options.connections)
        before = len(self.runs)
        result = bench.measure(self.server, load, tally=self.runs)
        self.in_flight_max += load.connections * (len(self.runs) - before)
        return result

    def expected(self) -> tuple[int, int]:
        """The fewest and most GET /users/me the server can have answered."""
        served = sum(run.requests for run in self.runs) + SET_UP_REQUESTS
        return served, served + self.in_flight_max


@dataclass(frozen=True)
class Servers:
    info: Observed
    metrics: Observed


def start(bench: Bench, database: Database, account: Account) -> Servers:
    """The INFO and the METRICS server, each logged in on as `account`."""
    multiproc_dir = bench.workdir / "prometheus-multiproc"
    multiproc_dir.mkdir()  # fresh: the scratch directory is new
    info = _start(bench, database, account, "service_info", {"LOG_LEVEL": "INFO"})
    metrics = _start(
        bench,
        database,
        account,
        "service_metrics",
        {"METRICS_ENABLED": "true", "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)},
    )
    return Servers(info, metrics)


def _start(
    bench: Bench, database: Database, account: Account, name: str, overrides: dict[str, str]
) -> Observed:
    server = start_uvicorn(
        bench.processes,
        name,
        ["app.main:create_app", "--factory"],
        env=service_env(database.url, bench.options.bcrypt_rounds) | overrides,
        workdir=bench.workdir,
        cpu=bench.cpus.server,
    )
    # Its own JWT secret: the service's token means nothing to it. The account
    # exists in the shared database, so a login is enough.
    return Observed(server, log_in(server.url, account.email, account.password))


def measure(bench: Bench, servers: Servers, *, second: bool) -> dict[str, WrkResult]:
    """INFO then METRICS; the second time METRICS then INFO (A B B A)."""
    seconds = bench.options.duration_s
    if not second:
        print(f"GET /users/me with access lines on (LOG_LEVEL=INFO) ({seconds}s) ...")
        info = servers.info.measure(bench)
        print(f"GET /users/me with metrics on (METRICS_ENABLED=true) ({seconds}s) ...")
        return {"info_me": info, "metrics_me": servers.metrics.measure(bench)}
    print(f"GET /users/me with metrics on, again ({seconds}s) ...")
    metrics = servers.metrics.measure(bench)
    print(f"GET /users/me with access lines on, again ({seconds}s) ...")
    return {"metrics_me_2": metrics, "info_me_2": servers.info.measure(bench)}


@dataclass(frozen=True)
class Counts:
    access_lines: int  # the INFO server's access lines of GET /users/me
    access_expected: tuple[int, int]
    log_lines_dropped: int  # the sum of its writer's "lines dropped" reports
    info_exit_status: int
    metrics_counted: int  # the METRICS server's count of 2xx GET /users/me
    metrics_expected: tuple[int, int]
    promtool: dict[str, Any]

    def details(self) -> dict[str, Any]:
        """What the figures do not hold."""
        return {"info_exit_status": self.info_exit_status, "promtool": self.promtool}


def count(bench: Bench, servers: Servers) -> Counts:
    """Scrapes the METRICS server, stops the INFO server and counts its lines;
    both are stopped, so they idle on the core no more."""
    metered = servers.metrics.server
    wait_until_idle(metered.pid)  # the requests wrk left in flight are answered
    metered.ensure_alive()
    exposition = scrape(metered)
    stop(metered.process)
    info = servers.info.server
    info.ensure_alive()
    # SIGTERM: uvicorn shuts down gracefully and the log writer writes what is left.
    info.process.terminate()
    try:
        status = info.process.wait(timeout=30)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{info.name} did not stop within 30s of SIGTERM") from exc
    lines, dropped = count_access_lines(info.log)
    return Counts(
        access_lines=lines,
        access_expected=servers.info.expected(),
        log_lines_dropped=dropped,
        info_exit_status=status,
        metrics_counted=requests_counted(exposition),
        metrics_expected=servers.metrics.expected(),
        promtool=promtool_check(exposition, bench.workdir),
    )


def count_access_lines(log: Path, path: str = ME) -> tuple[int, int]:
    """(access lines of GET `path`, lines the writer reported dropped) in a log
    of JSON lines; other lines (uvicorn's own) are skipped."""
    lines = dropped = 0
    with log.open("rb") as text:
        for raw in text:
            if not raw.startswith(b"{"):
                continue
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(record, dict):
                continue
            logger = record.get("logger")
            if logger == ACCESS_LOGGER:
                if record.get("method") == "GET" and record.get("path") == path:
                    lines += 1
            elif logger == LOG_WRITER_LOGGER and isinstance(record.get("dropped"), int):
                dropped += record["dropped"]
    return lines, dropped


def scrape(server: Server) -> str:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.get("/metrics")
    if response.status_code != 200:
        raise BenchError(
            f"GET /metrics on {server.name} answered {response.status_code}: {response.text[:500]}"
        )
    return response.text


def requests_counted(exposition: str, route: str = ME) -> int:
    """The count of 2xx GET `route` requests in a scrape (0 if none)."""
    wanted = {"method": "GET", "route": route, "status": "2xx"}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == REQUESTS_METRIC and sample.labels == wanted:
                return int(sample.value)
    return 0


def promtool_check(exposition: str, workdir: Path) -> dict[str, Any]:
    """`promtool check metrics` on a scrape; ok is None without promtool."""
    promtool = shutil.which("promtool")
    if promtool is None:
        return {"ok": None, "output": "promtool is not on PATH (Debian package prometheus)"}
    try:
        done = subprocess.run(  # noqa: S603 - a fixed command
            [promtool, "check", "metrics"],
            input=exposition,
            capture_output=True,
            text=True,
            cwd=workdir,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "output": "promtool check metrics took longer than 60s"}
    output = (done.stdout + done.stderr).strip()
    return {"ok": done.returncode == 0, "exit_status": done.returncode, "output": output[:2000]}


# --- figures, targets, checks, rows -------------------------------------------


def figures(runs: dict[str, WrkResult], counts: Counts) -> dict[str, Any]:
    """me_rps of each server, the two runs' mean; the service's are `me` and `me_2`."""
    warning = (runs["me"].rps + runs["me_2"].rps) / 2
    info = (runs["info_me"].rps + runs["info_me_2"].rps) / 2
    metrics = (runs["metrics_me"].rps + runs["metrics_me_2"].rps) / 2
    return {
        "me_rps_info": info,
        "me_rps_warning": warning,
        "info_vs_warning": info / warning if warning else 0.0,
        "me_rps_metrics": metrics,
        # The same service: LOG_LEVEL=WARNING and metrics off.
        "me_rps_no_metrics": warning,
        "metrics_vs_none": metrics / warning if warning else 0.0,
        "access_lines": counts.access_lines,
        "access_lines_expected": list(counts.access_expected),
        "log_lines_dropped": counts.log_lines_dropped,
        "metrics_counted": counts.metrics_counted,
        "metrics_counted_expected": list(counts.metrics_expected),
        "promtool_ok": counts.promtool["ok"],
    }


def targets(m: dict[str, Any]) -> list[Target]:
    return [
        Target("info_vs_warning", m["info_vs_warning"], ">=", INFO_VS_WARNING_MIN),
        Target("metrics_vs_none", m["metrics_vs_none"], ">=", METRICS_VS_NONE_MIN),
    ]


def checks(runs: dict[str, WrkResult], counts: Counts) -> list[Check]:
    """Errors and lost lines or counts make the figures meaningless."""
    lines, (low, high) = counts.access_lines, counts.access_expected
    dropped = counts.log_lines_dropped
    missing = max(low - lines, 0)
    counted, (c_low, c_high) = counts.metrics_counted, counts.metrics_expected
    return [
        *(clean_run(name, runs[name]) for name in RUN_NAMES),
        Check(
            "service_info stopped cleanly on SIGTERM",
            counts.info_exit_status in STOPPED_CLEANLY,
            f"exit status {counts.info_exit_status}",
        ),
        Check("service_info: no log line dropped", dropped == 0, f"{dropped} reported dropped"),
        Check(
            "service_info: an access line for each GET /users/me",
            low <= lines <= high,
            f"{lines:,} lines, expected {low:,}..{high:,}; {missing:,} missing"
            f" ({max(missing - dropped, 0):,} of them not reported dropped)",
        ),
        Check(
            "service_metrics: each GET /users/me counted",
            c_low <= counted <= c_high,
            f"{counted:,} counted, expected {c_low:,}..{c_high:,}",
        ),
    ]


def warnings(counts: Counts) -> list[str]:
    promtool = counts.promtool
    if promtool["ok"] is False:
        return [f"promtool check metrics found problems: {promtool['output'][:500]}"]
    return []


def rows(m: dict[str, Any], targets_by_name: dict[str, Target]) -> list[Row]:
    low, high = m["access_lines_expected"]
    c_low, c_high = m["metrics_counted_expected"]
    promtool = {True: "ok", False: "FAILED", None: "not installed"}[m["promtool_ok"]]
    return [
        Row(
            "LOG_LEVEL INFO / WARNING  GET /users/me, A B B A",
            f"{m['me_rps_info']:,.0f} / {m['me_rps_warning']:,.0f} rps",
        ),
        target_row("  INFO vs WARNING", targets_by_name["info_vs_warning"]),
        Row("  access lines / expected", f"{m['access_lines']:,} / {low:,}..{high:,}"),
        Row("  log lines dropped", f"{m['log_lines_dropped']:,}"),
        Row(
            "metrics on / off  GET /users/me, A B B A",
            f"{m['me_rps_metrics']:,.0f} / {m['me_rps_no_metrics']:,.0f} rps",
        ),
        target_row("  on vs off", targets_by_name["metrics_vs_none"]),
        Row(
            "  2xx counted by /metrics / expected",
            f"{m['metrics_counted']:,} / {c_low:,}..{c_high:,}",
        ),
        Row("  promtool check metrics", promtool),
    ]
