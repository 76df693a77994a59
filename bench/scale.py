"""`--scale`: latency of the main requests on a database `make seed` has filled.

Does the cost of a request grow with the table? Each probe runs on its own at
low concurrency (--scale-connections, default 1), so its p50 is the cost of one
request rather than time spent queueing. The deep page starts from a cursor
built for the row at --deep-fraction of the (created_at, id) order, encoded as
the service encodes its own, and follows the next_cursor the service returns.

Every probe that logs in or refreshes has an account of its own: a login
ends its account's oldest session beyond MAX_SESSIONS_PER_USER. The refresh
probe spends refresh tokens as a client does (bench/refresh.lua), so its
warm-up spends sessions of its own, and the run starts on fresh ones.

To measure another request, add a Probe in `build_probes`.
"""

import sys
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from app.config import Settings
from bench.api import Account, get_json, log_in, new_credentials, register
from bench.database import (
    Database,
    DeepPosition,
    deep_position,
    delete_users,
    seeded_database,
)
from bench.harness import Bench, refresh_chains
from bench.procs import BenchError, run_checked
from bench.report import (
    Check,
    Row,
    clean_run,
    machine_info,
    noise_warnings,
    print_checks,
    print_table,
    print_warnings,
)
from bench.servers import Server, service_env
from bench.wrk_runner import Load, WrkResult

# The service runs with the default (service_env drops the setting).
MAX_SESSIONS_PER_USER: int = Settings.model_fields["MAX_SESSIONS_PER_USER"].default


@dataclass(frozen=True)
class Probe:
    name: str
    load: Load
    # The warm-up's own load, when `load` spends what it sends (refresh tokens).
    warm_up: Load | None = None


def run_scale(bench: Bench, database: Database | None = None) -> dict[str, Any]:
    """The probes on `database`, by default the one `make seed` filled."""
    options = bench.options
    database = database or seeded_database()
    position = deep_position(database, options.deep_fraction)  # before we add users
    print(f"{position.users:,} users in {database.display}")
    service = bench.start_service(database)
    user_login, admin_login = new_credentials("bench"), new_credentials("bench-admin")
    # Logins and refreshes each on an account of their own: a login ends its
    # account's oldest session beyond MAX_SESSIONS_PER_USER, which would be
    # the `me` bearer's or a refresh chain's.
    login_login, refresh_login = new_credentials("bench-login"), new_credentials("bench-refresh")
    emails = [user_login[0], login_login[0], refresh_login[0], admin_login[0]]
    try:
        accounts = Accounts(
            user=register(service.url, "Bench User", *user_login),
            login=register(service.url, "Bench Login", *login_login),
            refresh=register(service.url, "Bench Refresh", *refresh_login),
            admin=create_admin(bench, service, database.url, *admin_login),
        )
        probes = build_probes(bench, service, accounts, position)
        results: dict[str, WrkResult] = {}
        for probe in probes:
            print(f"{probe.name} ({options.duration_s}s, -c{probe.load.connections}) ...")
            results[probe.name] = measure(bench, service, probe)
        trouble = service.trouble_lines()[:50]
    finally:
        deleted = delete_users(database, emails)
    checks = [clean_run(name, r) for name, r in results.items()]
    return {
        "mode": "scale",
        "machine": machine_info(),
        "config": {
            "db_backend": database.backend,
            "db_url": database.display,
            "users": position.users,
            "deep_offset": position.offset,
            "page_size": options.page_size,
            "duration_s": options.duration_s,
            "warmup_s": options.warmup_s,
            "connections": options.scale_connections,
            "bcrypt_rounds": options.bcrypt_rounds,
            "server_cpu": bench.cpus.server,
            "wrk_cpu": bench.cpus.load,
        },
        "metrics": {
            f"{name}_{stat}_ms": r.latency_ms[stat]
            for name, r in results.items()
            for stat in ("p50", "p99")
        }
        | {f"{name}_rps": round(r.rps, 2) for name, r in results.items()},
        "checks": [vars(c) for c in checks],
        "valid": all(c.ok for c in checks),
        "warnings": noise_warnings(results, database.backend),
        "runs": {name: r.to_json() for name, r in results.items()},
        "server_log_trouble": {"service": trouble},
        "bench_users_deleted": deleted,  # of 4
    }


def measure(bench: Bench, service: Server, probe: Probe) -> WrkResult:
    if probe.warm_up is None:
        return bench.measure(service, probe.load)
    if bench.options.warmup_s > 0:
        bench.wrk(replace(probe.warm_up, duration_s=bench.options.warmup_s))
    return bench.measure(service, probe.load, warm_up=False)


@dataclass(frozen=True)
class Accounts:
    user: Account  # the bearer of GET /users/me
    login: Account  # the one the login probe logs in, again and again
    refresh: Account  # the owner of the refresh probe's sessions
    admin: Account  # the bearer of the listings


def build_probes(
    bench: Bench, service: Server, accounts: Accounts, position: DeepPosition
) -> list[Probe]:
    connections = bench.options.scale_connections
    admin = accounts.admin
    first_page = _page_path(bench.options.page_size)
    deep_page = _deep_page_path(service, admin, bench.options.page_size, position)
    return [
        Probe("login", bench.login_load(service, [accounts.login], connections)),
        Probe("me", bench.get_load(service, "/users/me", accounts.user, connections)),
        refresh_probe(bench, service, accounts.refresh, connections),
        Probe("list_first_page", bench.get_load(service, first_page, admin, connections)),
        Probe("list_deep_page", bench.get_load(service, deep_page, admin, connections)),
    ]


def refresh_probe(bench: Bench, service: Server, account: Account, connections: int) -> Probe:
    """Refresh chains on sessions of `account`, one login each; the warm-up's on others."""
    chains = refresh_chains(connections)
    warm_up = bench.options.warmup_s > 0
    sessions = 1 + chains * (2 if warm_up else 1)  # the registration's login too
    if sessions > MAX_SESSIONS_PER_USER:
        raise BenchError(
            f"the refresh probe needs {sessions} sessions of one account, more than"
            f" MAX_SESSIONS_PER_USER ({MAX_SESSIONS_PER_USER}): use fewer --scale-connections"
        )

    def load() -> Load:
        logins = [log_in(service.url, account.email, account.password) for _ in range(chains)]
        return bench.refresh_load(service, [login.refresh_token for login in logins], connections)

    return Probe("refresh", load(), load() if warm_up else None)


def create_admin(bench: Bench, service: Server, db_url: str, email: str, password: str) -> Account:
    """Through the operator's command, as the README says, then a normal login."""
    env = service_env(db_url, bench.options.bcrypt_rounds) | {"ADMIN_PASSWORD": password}
    run_checked(
        [
            sys.executable,
            "-m",
            "app.cli",
            "create-admin",
            "--email",
            email,
            "--name",
            "Bench Admin",
        ],
        env=env,
        cwd=bench.workdir,
        what="python -m app.cli create-admin",
    )
    return log_in(service.url, email, password)


def _page_path(limit: int, cursor: str | None = None) -> str:
    query = {"limit": str(limit)} | ({"cursor": cursor} if cursor else {})
    return "/users?" + urlencode(query)


def _deep_page_path(service: Server, admin: Account, limit: int, position: DeepPosition) -> str:
    """The page after the one our cursor opens: its cursor is the service's own."""
    page = get_json(service.url, _page_path(limit, position.cursor), admin.token)
    if not page.get("items"):
        raise BenchError(f"the page at offset {position.offset} is empty: is the cursor right?")
    next_cursor = page.get("next_cursor")
    return _page_path(limit, next_cursor if isinstance(next_cursor, str) else position.cursor)


def print_scale(data: dict[str, Any]) -> None:
    config, machine, runs = data["config"], data["machine"], data["runs"]
    rows = [
        Row(
            name,
            f"p50 {r['latency_ms']['p50']:.2f} ms",
            f"p99 {r['latency_ms']['p99']:.2f} ms",
            f"{r['rps']:,.1f} rps",
        )
        for name, r in runs.items()
    ]
    print_table(
        f"--scale: {config['users']:,} users, {config['db_backend']} ({config['db_url']}),"
        f" {machine['date']}\n"
        f"wrk -c{config['connections']} for {config['duration_s']}s per probe;"
        f" pages of {config['page_size']}, deep page after row {config['deep_offset']:,}",
        rows,
    )
    print_checks([Check(**c) for c in data["checks"]], data["server_log_trouble"])
    print_warnings(data["warnings"])
