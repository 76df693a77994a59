"""What a run found: targets, validity checks, machine facts, the table and the JSON file."""

import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.procs import REPO_ROOT
from bench.wrk_runner import WrkResult

# Above this share of the server's core taken by others, a run's figures are suspect.
NOISE_LIMIT = 0.10


@dataclass(frozen=True)
class Target:
    """A figure the issue sets a bound on. Missing it is a finding, not a failure of the run."""

    name: str
    value: float
    op: str  # ">=" or "<="
    bound: float

    @property
    def passed(self) -> bool:
        return self.value >= self.bound if self.op == ">=" else self.value <= self.bound

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "value": round(self.value, 4), "passed": self.passed}


@dataclass(frozen=True)
class Check:
    """A condition for the figures to mean anything (no errors, servers alive)."""

    name: str
    ok: bool
    detail: str = ""


def clean_run(name: str, result: WrkResult) -> Check:
    """A run measured something, and every answer was a success."""
    ok = result.requests > 0 and result.not_ok == 0 and result.socket_errors == 0
    detail = f"{result.requests} requests, non-2xx {result.not_ok}, socket errors {result.errors}"
    return Check(f"{name}: no errors", ok, detail)


def noise_warnings(
    runs: dict[str, WrkResult], backend: str, hashing: dict[str, Any] | None = None
) -> list[str]:
    """The machine may be shared; say where that may have skewed the figures."""
    # PostgreSQL is not ours to pin: its backends count as "other processes".
    who = "other processes (PostgreSQL included)" if backend == "postgresql" else "others"
    warnings = [
        f"{name}: {who} used {r.other_load:.0%} of the server core; its figures are low"
        for name, r in runs.items()
        if r.other_load is not None and r.other_load > NOISE_LIMIT
    ]
    if hashing:
        wall, cpu = float(hashing["median_ms"]), float(hashing["cpu_median_ms"])
        if wall > cpu * (1 + NOISE_LIMIT):
            warnings.append(
                f"bcrypt timing: wall {wall:.0f} ms but CPU {cpu:.0f} ms: the core was shared,"
                " so the login limit is too low and login/limit too high"
            )
    return warnings


@dataclass(frozen=True)
class Row:
    label: str
    value: str = ""
    target: str = ""
    verdict: str = ""


def target_row(label: str, target: Target, digits: int = 2) -> Row:
    bound = f"{target.op} {target.bound:g}"
    return Row(label, f"{target.value:.{digits}f}", bound, target.verdict)


def print_table(title: str, rows: list[Row]) -> None:
    print()
    print(title)
    label_width = max(len(r.label) for r in rows) + 2
    value_width = max(len(r.value) for r in rows) + 2
    target_width = max(len(r.target) for r in rows)
    for row in rows:
        line = f"  {row.label:<{label_width}}{row.value:>{value_width}}"
        if row.target:
            line += f"   {row.target:<{target_width}}   {row.verdict}"
        print(line.rstrip())


def print_checks(checks: list[Check], trouble: dict[str, list[str]]) -> None:
    print()
    for check in checks:
        mark = "ok  " if check.ok else "FAIL"
        print(f"  [{mark}] {check.name}" + (f": {check.detail}" if check.detail else ""))
    for server, lines in trouble.items():
        if lines:
            print(f"  {server} logged {len(lines)} warning/error line(s), e.g.:")
            for line in lines[:5]:
                print(f"      {line[:200]}")


def print_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        print(f"  [warn] {warning}")


def machine_info() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_allowed": sorted(os.sched_getaffinity(0)),
        "load_average_1m": os.getloadavg()[0],  # another job on the machine shows here
        "python": platform.python_version(),
        "platform": platform.platform(),
        "wrk": _first_line(["wrk", "-v"]),
        "uvicorn": version("uvicorn"),
        "fastapi": version("fastapi"),
        "git_commit": _first_line(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"]),
        "git_dirty": bool(_first_line(["git", "-C", str(REPO_ROOT), "status", "--porcelain"])),
    }


def write_results(data: dict[str, Any], results_dir: Path, prefix: str = "") -> Path:
    """bench/results/<prefix><UTC timestamp>.json, and the same as <prefix>latest.json."""
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(data, indent=2) + "\n"
    path = results_dir / f"{prefix}{stamp}.json"
    path.write_text(text)
    (results_dir / f"{prefix}latest.json").write_text(text)
    return path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _first_line(command: list[str]) -> str:
    try:
        done = subprocess.run(  # noqa: S603 - fixed commands
            command, capture_output=True, text=True, timeout=10, check=False
        )
    except OSError:
        return ""
    lines = (done.stdout or done.stderr).splitlines()
    return lines[0].strip() if lines else ""
