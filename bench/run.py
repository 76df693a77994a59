"""Benchmark of the user service against a bare-ASGI ceiling, driven by wrk.

    make bench                                    # embedded SQLite, fresh file
    make bench BENCH_ARGS="--duration 5"
    BENCH_DB_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/bench make bench
    make seed N=100000 && make bench BENCH_ARGS="--scale"    # the seeded database:
                                          # BENCH_DB_URL, else DB_URL / .env as `make seed`
    make bench-scale          # --scale-compare: --scale at 1,000 and 1,000,000 users, each on
                              # a scratch database created, seeded and dropped on the server
                              # BENCH_DB_URL names (the admin connection; default
                              # postgresql+asyncpg://postgres@127.0.0.1:5432/postgres)
    make bench-scale BENCH_ARGS="--sizes 1000,100000 --duration 10"

The service runs as in production (ENV=prod, one uvicorn worker, no reload, no
access log, LOG_LEVEL=WARNING, bcrypt 12 rounds, mail over SMTP to the bench's
own sink) pinned to one core, wrk to another. The standard run also serves the
commit before sessions (--baseline, a git worktree; "none" skips it) for
GET /users/me, and a bare FastAPI app for the refresh grant. It measures
what observability costs GET /users/me, on two more servers of the service
between its two runs (A B B A): one with access lines on (LOG_LEVEL=INFO,
to its log file), one with Prometheus metrics on (METRICS_ENABLED=true,
multiprocess mode); then it counts the INFO server's access lines and the
METRICS server's scraped count against the requests wrk completed (lines
lost or miscounted make the run invalid) and runs `promtool check metrics`
on the scrape when promtool is installed. The table and
bench/results/<timestamp>.json (and latest.json; for --scale-compare
scale-<timestamp>.json and scale-latest.json) hold the figures.
Exit status: 0 when the run measured something meaningful, even if a target is
missed; 1 when something broke (a server did not start or died, requests
failed, a tool is missing); 130 on Ctrl-C.
"""

import argparse
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

from bench import baseline, scale, scale_compare, standard
from bench.harness import Bench, Options
from bench.procs import REPO_ROOT, BenchError, Processes, plan_cpus
from bench.report import write_results
from bench.wrk_runner import ensure_wrk


def parse_options(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    add = parser.add_argument
    add(
        "--duration",
        type=int,
        default=None,
        help="seconds of each measurement (default 10; 5 per probe in --scale-compare)",
    )
    add("--warmup", type=int, default=2, help="seconds of load before each GET measurement")
    add("--connections", type=int, default=32, help="wrk connections for GET runs (32)")
    add("--login-connections", type=int, default=16, help="wrk connections for logins (16)")
    add("--threads", type=int, default=1, help="wrk threads (1)")
    add("--bcrypt-rounds", type=int, default=12, help="BCRYPT_ROUNDS of the service (12)")
    add("--hash-samples", type=int, default=10, help="bcrypt verifies to time (10)")
    add("--refresh-connections", type=int, default=16, help="wrk connections for refreshes (16)")
    add(
        "--baseline",
        default=baseline.BEFORE_SESSIONS,
        help=(
            "commit whose service GET /users/me is also measured, in the same run"
            f" (default {baseline.BEFORE_SESSIONS}, before sessions); 'none' skips it"
        ),
    )
    add("--storm-lead", type=int, default=2, help="seconds the login storm runs alone first")
    add("--results-dir", type=Path, default=REPO_ROOT / "bench" / "results")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--scale", action="store_true", help="latency on the seeded database instead")
    mode.add_argument(
        "--scale-compare",
        action="store_true",
        help="--scale at each of --sizes, on scratch PostgreSQL databases (BENCH_DB_URL: admin)",
    )
    add(
        "--sizes",
        type=_sizes,
        default=None,
        help="users per database in --scale-compare (default 1000,1000000)",
    )
    add("--scale-connections", type=int, default=1, help="wrk connections in --scale (1)")
    add("--deep-fraction", type=float, default=0.9, help="depth of the deep page in --scale")
    add("--page-size", type=int, default=50, help="limit of the listed pages in --scale")
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = 5 if args.scale_compare else 10
    if args.sizes is not None and not args.scale_compare:
        parser.error("--sizes goes with --scale-compare")
    if min(args.duration, args.connections, args.login_connections, args.threads) < 1:
        parser.error("--duration, --connections, --login-connections and --threads must be >= 1")
    return Options(
        duration_s=args.duration,
        warmup_s=max(args.warmup, 0),
        connections=args.connections,
        login_connections=args.login_connections,
        threads=args.threads,
        bcrypt_rounds=args.bcrypt_rounds,
        hash_samples=max(args.hash_samples, 1),
        storm_lead_s=max(args.storm_lead, 1),
        results_dir=args.results_dir,
        scale=args.scale,
        scale_connections=max(args.scale_connections, 1),
        deep_fraction=args.deep_fraction,
        page_size=args.page_size,
        scale_compare=args.scale_compare,
        sizes=args.sizes or (1_000, 1_000_000),
        refresh_connections=max(args.refresh_connections, 1),
        baseline=None if args.baseline.lower() == "none" else args.baseline,
    )


def _sizes(value: str) -> tuple[int, ...]:
    """ "1000,1000000" -> (1000, 1000000): two or more distinct sizes, smallest first."""
    try:
        sizes = tuple(sorted({int(part) for part in value.split(",") if part.strip()}))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of integers: {value!r}") from exc
    if len(sizes) < 2 or sizes[0] < 1:
        raise argparse.ArgumentTypeError("two or more different sizes, each 1 or more")
    return sizes


# --- entry point --------------------------------------------------------------


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Turns SIGTERM into an exception, so the `finally` blocks stop the servers.
    raise KeyboardInterrupt


def run(options: Options) -> dict[str, Any]:
    ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        if options.scale_compare:
            return scale_compare.run_scale_compare(options, Path(scratch), plan_cpus())
        with Processes() as processes:
            bench = Bench(options, processes, Path(scratch), plan_cpus())
            return scale.run_scale(bench) if options.scale else standard.run_standard(bench)


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        data = run(options)
    except BenchError as exc:
        print(f"\nbench: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        dropped = ", scratch databases dropped" if options.scale_compare else ""
        print(f"\nbench: interrupted; servers stopped{dropped}", file=sys.stderr)
        return 130
    prefix = ""
    if options.scale_compare:
        scale_compare.print_scale_compare(data)
        prefix = "scale-"
    elif options.scale:
        scale.print_scale(data)
    else:
        standard.print_standard(data)
    path = write_results(data, options.results_dir, prefix)
    print(f"\nresults: {path} (and {prefix}latest.json)")
    if not data["valid"]:
        print("bench: some checks failed: the figures above are not trustworthy", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
