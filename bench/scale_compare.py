"""`--scale-compare`: the --scale probes at several table sizes, each on a scratch database.

    make bench-scale                                       # 1,000 and 1,000,000 users
    make bench-scale BENCH_ARGS="--sizes 1000,100000 --duration 10"
    BENCH_DB_URL=postgresql+asyncpg://me:pw@db:5432/postgres make bench-scale

BENCH_DB_URL names the PostgreSQL server and the admin connection the scratch
databases are created and dropped from (default DEFAULT_ADMIN_URL,
postgresql+asyncpg://postgres@127.0.0.1:5432/postgres); its role needs
CREATEDB, and the database it names is only connected to. For each size,
smallest first: the database bench_scale_<size> is created (dropped first if an
earlier run left it), migrated (alembic upgrade head), loaded by bench.seed
(COPY of the users, each with a live session and an unspent refresh token, then
ANALYZE), vacuumed and checkpointed so that no background work of the load
lands in the measurements, measured by the --scale probes (login, me, refresh,
the first and a deep page) with the service started as in --scale, then
dropped, also when the run fails or is interrupted. One database exists at a
time. Below about 2 * page size / (1 - deep fraction) users (1,000 with the
defaults) the deep page is the last, shorter one, so its p50 is not comparable.

The issue's target: at the largest size, each probe's p50 stays within
RATIO_MAX of its p50 at the smallest (issue 9 names refresh and me, with a
session per user). Missing it is a finding; the exit status is 1 only when the
figures themselves are not trustworthy (see bench.run).
"""

import asyncio
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from bench import scale
from bench.database import (
    Database,
    admin_database,
    drop_database,
    migrate,
    recreate_database,
    settle,
)
from bench.harness import Bench, Options
from bench.procs import BenchError, CpuPlan, Processes
from bench.report import Check, Target, machine_info, print_checks, print_warnings
from bench.seed import DEFAULT_BATCH, Plan, hash_seed_password, seed

RATIO_MAX = 1.5
SCRATCH_PREFIX = "bench_scale_"


def run_scale_compare(options: Options, workdir: Path, cpus: CpuPlan) -> dict[str, Any]:
    admin = admin_database()
    sizes = ", ".join(f"{size:,}" for size in options.sizes)
    print(f"--scale-compare: {sizes} users, scratch databases on {admin.display}")
    # One hash for every size, at the service's cost, as `make seed` does.
    hashed = asyncio.run(hash_seed_password(options.bcrypt_rounds))
    runs = {
        str(size): measure_size(options, admin, size, workdir / str(size), cpus, hashed)
        for size in options.sizes
    }
    return assemble(options, admin, cpus, runs)


def measure_size(
    options: Options, admin: Database, size: int, workdir: Path, cpus: CpuPlan, hashed: str
) -> dict[str, Any]:
    """One size: create, migrate, seed, settle, probe, drop."""
    name = f"{SCRATCH_PREFIX}{size}"
    print(f"\n== {size:,} users: scratch database {name}")
    try:  # recreate_database too: an interrupted CREATE DATABASE leaves one to drop
        database = recreate_database(admin, name)
        workdir.mkdir(parents=True, exist_ok=True)
        migrate(database, workdir)
        plan = Plan(database.url, size, DEFAULT_BATCH, start=0, hashed_password=hashed)
        seed_s = _timed(lambda: asyncio.run(seed(plan)))
        settle_s = _timed(lambda: settle(database))
        print(f"seeded in {seed_s:.1f}s (ANALYZE included); VACUUM + CHECKPOINT {settle_s:.1f}s")
        # The service stops when this block ends, before its database is dropped.
        with Processes() as processes:
            data = scale.run_scale(Bench(options, processes, workdir, cpus), database)
    finally:
        dropped = _drop(admin, name)
    scale.print_scale(data)
    return data | {
        "database": name,
        "seed_s": round(seed_s, 2),
        "vacuum_checkpoint_s": round(settle_s, 2),
        "scratch_dropped": dropped,
    }


def _drop(admin: Database, name: str) -> bool:
    """Drops the scratch database; a failure is reported, not raised, so that it
    never hides the error that brought us here."""
    try:
        with _signals_deferred():
            drop_database(admin, name)
    except BenchError as exc:
        print(
            f"bench: could not drop {name} ({exc}); the next run drops it, or:"
            f' DROP DATABASE "{name}" WITH (FORCE)',
            file=sys.stderr,
        )
        return False
    print(f"dropped {name}")
    return True


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done: a second Ctrl-C must not
    leave the scratch database behind. One that arrived is raised afterwards."""
    received: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    watched = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, note) for signum in watched}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        raise KeyboardInterrupt


def _timed(step: Callable[[], object]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def assemble(
    options: Options, admin: Database, cpus: CpuPlan, runs: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Each probe's p50 at every size, and its ratio largest / smallest against RATIO_MAX."""
    smallest, largest = str(min(options.sizes)), str(max(options.sizes))
    comparison, targets = [], []
    for probe in runs[smallest]["runs"]:
        p50 = _across_sizes(runs, probe, "p50")
        target = Target(f"{probe}_p50_ratio", p50[largest] / p50[smallest], "<=", RATIO_MAX)
        targets.append(target)
        comparison.append(
            {
                "probe": probe,
                "p50_ms": p50,
                "p99_ms": _across_sizes(runs, probe, "p99"),
                "rps": {size: data["runs"][probe]["rps"] for size, data in runs.items()},
                "ratio": round(target.value, 4),
                "target": target.to_json(),
            }
        )
    checks = [
        Check(f"{int(size):,} users, {check['name']}", check["ok"], check["detail"])
        for size, data in runs.items()
        for check in data["checks"]
    ] + [
        Check(f"{int(size):,} users, scratch database dropped", data["scratch_dropped"])
        for size, data in runs.items()
    ]
    return {
        "mode": "scale-compare",
        "machine": machine_info(),
        "config": {
            "db_backend": admin.backend,
            "admin_db_url": admin.display,
            "sizes": list(options.sizes),
            "scratch_databases": [data["database"] for data in runs.values()],
            "seed": "bench.seed (users, a session and a refresh token each: COPY, ANALYZE),"
            " then VACUUM and CHECKPOINT",
            "page_size": options.page_size,
            "deep_fraction": options.deep_fraction,
            "duration_s": options.duration_s,
            "warmup_s": options.warmup_s,
            "connections": options.scale_connections,
            "bcrypt_rounds": options.bcrypt_rounds,
            "server_cpu": cpus.server,
            "wrk_cpu": cpus.load,
            "ratio_max": RATIO_MAX,
        },
        "comparison": comparison,
        "metrics": {
            f"{row['probe']}_p50_ms_at_{size}": value
            for row in comparison
            for size, value in row["p50_ms"].items()
        }
        | {f"{row['probe']}_p50_ratio": row["ratio"] for row in comparison},
        "targets": [target.to_json() for target in targets],
        "checks": [vars(check) for check in checks],
        "valid": all(check.ok for check in checks),
        "warnings": [
            f"{int(size):,} users, {warning}"
            for size, data in runs.items()
            for warning in data["warnings"]
        ],
        "sizes": runs,
    }


def _across_sizes(runs: dict[str, dict[str, Any]], probe: str, stat: str) -> dict[str, float]:
    """A latency percentile of one probe, per size."""
    return {size: data["runs"][probe]["latency_ms"][stat] for size, data in runs.items()}


def print_scale_compare(data: dict[str, Any]) -> None:
    config, machine = data["config"], data["machine"]
    sizes = [str(size) for size in config["sizes"]]
    header = ["probe", *(f"p50 @ {int(size):,}" for size in sizes), "ratio", "target", ""]
    lines = [
        [
            row["probe"],
            *(f"{row['p50_ms'][size]:.2f} ms" for size in sizes),
            f"{row['ratio']:.2f}",
            f"{row['target']['op']} {row['target']['bound']:g}",
            "PASS" if row["target"]["passed"] else "FAIL",
        ]
        for row in data["comparison"]
    ]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    print()
    print(
        f"--scale-compare: p50 at {' vs '.join(f'{int(s):,}' for s in sizes)} users,"
        f" {config['db_backend']} ({config['admin_db_url']}), {machine['date']}\n"
        f"wrk -c{config['connections']} for {config['duration_s']}s per probe after"
        f" {config['warmup_s']}s warm-up; pages of {config['page_size']}, deep page at"
        f" {config['deep_fraction']:.0%} of the (created_at, id) order;"
        f" ratio = p50 @ {int(sizes[-1]):,} / p50 @ {int(sizes[0]):,}"
    )
    for line in [header, *lines]:
        cells = [line[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(line[1:-2], widths[1:-2], strict=True)]
        cells += [line[-2].ljust(widths[-2]), line[-1]]
        print("  " + "   ".join(cells).rstrip())
    for size in sizes:
        run = data["sizes"][size]
        print(
            f"  {int(size):,} users: seeded in {run['seed_s']:.1f}s,"
            f" VACUUM + CHECKPOINT {run['vacuum_checkpoint_s']:.1f}s"
        )
    trouble = {
        f"service @ {int(size):,}": run["server_log_trouble"]["service"]
        for size, run in data["sizes"].items()
    }
    print_checks([Check(**check) for check in data["checks"]], trouble)
    print_warnings(data["warnings"])
