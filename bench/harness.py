"""What both benchmark modes share: options, the run's context, and measuring helpers."""

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.api import Account
from bench.database import Database
from bench.procs import (
    CpuPlan,
    Processes,
    child_env,
    other_load,
    pinned,
    run_checked,
    sample_core,
    wait_until_idle,
)
from bench.servers import Server, service_env, start_uvicorn
from bench.wrk_runner import GET_WITH_TOKEN, LOGIN, REFRESH, Load, WrkResult, run_wrk


@dataclass(frozen=True)
class Options:
    duration_s: int
    warmup_s: int
    connections: int
    login_connections: int
    threads: int
    bcrypt_rounds: int
    hash_samples: int
    storm_lead_s: int
    results_dir: Path
    scale: bool
    scale_connections: int
    deep_fraction: float
    page_size: int
    scale_compare: bool = False
    sizes: tuple[int, ...] = (1_000, 1_000_000)  # users, in --scale-compare
    refresh_connections: int = 16
    baseline: str | None = None  # a commit to measure GET /users/me on as well


def refresh_chains(connections: int) -> int:
    """Sessions a refresh run needs: one per connection and a few spare, since wrk
    may drop a token when it retries a write (bench/refresh.lua)."""
    return connections + max(2, connections // 4)


@dataclass(frozen=True)
class Bench:
    """One run: its options, its children, its scratch directory, its cores."""

    options: Options
    processes: Processes
    workdir: Path
    cpus: CpuPlan

    def wrk(self, load: Load) -> WrkResult:
        return run_wrk(self.processes, load, self.cpus.load, self.workdir)

    def get_load(self, server: Server, path: str, account: Account, connections: int) -> Load:
        return Load(
            url=server.url + path,
            script=GET_WITH_TOKEN,
            connections=connections,
            duration_s=self.options.duration_s,
            script_env={"BENCH_TOKEN": account.token},
            threads=min(self.options.threads, connections),
        )

    def login_load(self, server: Server, accounts: list[Account], connections: int) -> Load:
        return Load(
            url=server.url + "/auth/token",
            script=LOGIN,
            connections=connections,
            duration_s=self.options.duration_s,
            script_env={"BENCH_FORM_BODIES": "\n".join(a.login_form for a in accounts)},
            threads=min(self.options.threads, connections),
        )

    def refresh_load(self, server: Server, refresh_tokens: list[str], connections: int) -> Load:
        """grant_type=refresh_token, each chain spending its last token: give
        `refresh_chains(connections)` tokens, each of its own session."""
        threads = min(self.options.threads, connections)
        return Load(
            url=server.url + "/auth/token",
            script=REFRESH,
            connections=connections,
            duration_s=self.options.duration_s,
            script_env={
                "BENCH_REFRESH_TOKENS": "\n".join(refresh_tokens),
                "BENCH_WRK_THREADS": str(threads),
            },
            threads=threads,
        )

    def measure(
        self,
        server: Server,
        load: Load,
        *,
        warm_up: bool = True,
        tally: list[WrkResult] | None = None,
    ) -> WrkResult:
        """Optionally warms up (pool connections, caches), waits for the server to go
        idle, runs `load`, and checks the server survived it. Every wrk run, the
        warm-up's too, is appended to `tally` (the requests a server served)."""
        runs = tally if tally is not None else []
        if warm_up and self.options.warmup_s > 0:
            runs.append(self.wrk(replace(load, duration_s=self.options.warmup_s)))
        wait_until_idle(server.pid)
        result = self.watching(server, lambda: self.wrk(load))
        runs.append(result)
        return result

    def watching(self, server: Server, run: Callable[[], WrkResult]) -> WrkResult:
        """`run()`, noting how much of the server's core other processes took meanwhile,
        and checking the server survived."""
        cpu = self.cpus.server
        before = sample_core(cpu, server.pid) if cpu is not None else None
        result = run()
        server.ensure_alive()
        if cpu is None or before is None:
            return result
        return replace(result, other_load=other_load(before, sample_core(cpu, server.pid)))

    def start_service(self, database: Database) -> Server:
        return start_uvicorn(
            self.processes,
            "service",
            ["app.main:create_app", "--factory"],
            env=service_env(database.url, self.options.bcrypt_rounds),
            workdir=self.workdir,
            cpu=self.cpus.server,
        )

    def hash_cost(self) -> dict[str, Any]:
        """bench.hashcost on the servers' core: the median bcrypt verify, in ms."""
        options = self.options
        out = run_checked(
            pinned(
                self.cpus.server,
                [
                    sys.executable,
                    "-m",
                    "bench.hashcost",
                    f"--rounds={options.bcrypt_rounds}",
                    f"--samples={options.hash_samples}",
                ],
            ),
            env=child_env({}),
            cwd=self.workdir,
            what="bcrypt timing (bench.hashcost)",
        )
        result: dict[str, Any] = json.loads(out)
        return result
