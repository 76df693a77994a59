"""The standard run: the service against the ceiling, idle and under a login storm.

Order matters: the GET runs first, on an idle service; then bcrypt is timed on
the server core just before the logins, so both see the same machine; the
storm last, because it leaves logins queued in the service.
"""

import time
from dataclasses import replace
from typing import Any

from bench.api import Account, new_credentials, register
from bench.ceiling import ME_BODY_ENV, TOKEN_BODY_ENV
from bench.database import delete_users, fresh_database
from bench.harness import Bench
from bench.procs import child_env, wait_until_idle
from bench.report import (
    Check,
    Row,
    Target,
    clean_run,
    machine_info,
    noise_warnings,
    print_checks,
    print_table,
    print_warnings,
    target_row,
)
from bench.servers import Server, start_uvicorn
from bench.wrk_runner import Load, WrkResult, collect, start_wrk

# The targets.
ME_VS_CEILING_MIN = 0.40
LOGIN_VS_LIMIT_MIN = 0.93
P99_UNDER_LOGIN_MAX = 3.0
RPS_UNDER_LOGIN_MIN = 0.8
RSS_RATIO_MAX = 1.5


def run_standard(bench: Bench) -> dict[str, Any]:
    options = bench.options
    database = fresh_database(bench.workdir)
    service = bench.start_service(database)
    account = register(service.url, "Bench User", *new_credentials("bench"))
    # One account per login connection: logins of one account are checked one
    # at a time (the lockout's rule), so a storm on one account would measure that.
    # None of them is the GET runs' account: a login ends its account's oldest
    # session beyond MAX_SESSIONS_PER_USER, which would be that bearer's.
    login_accounts = [
        register(service.url, "Bench User", *new_credentials("bench"))
        for _ in range(options.login_connections)
    ]
    ceiling = start_ceiling(bench, account)
    print(f"service pid {service.pid} on {service.url}, ceiling pid {ceiling.pid} on {ceiling.url}")

    print(f"GET /users/me on the ceiling ({options.duration_s}s) ...")
    ceiling_me = bench.measure(ceiling, me_load(bench, ceiling, account))
    print(f"GET /users/me on the service ({options.duration_s}s) ...")
    me = bench.measure(service, me_load(bench, service, account))
    # Just before the logins, so both see the same machine.
    print("timing bcrypt on the server core ...")
    wait_until_idle(service.pid)
    hashing = bench.hash_cost()
    print(f"POST /auth/token on the service ({options.duration_s}s) ...")
    # No warm-up: it would leave a queue of logins to drain, and the set-up
    # already went through the whole login path once.
    login = bench.measure(
        service,
        bench.login_load(service, login_accounts, options.login_connections),
        warm_up=False,
    )
    print(f"GET /users/me during a login storm ({options.duration_s}s) ...")
    me_storm, storm = measure_under_login(bench, service, account, login_accounts)

    rss_kib = {s.name: s.peak_rss_kib() for s in (service, ceiling)}
    emails = [a.email for a in (account, *login_accounts)]
    cleaned = delete_users(database, emails) == len(emails)
    runs = {
        "ceiling_me": ceiling_me,
        "me": me,
        "login": login,
        "me_under_login": me_storm,
        "login_storm": storm,
    }
    return assemble(bench, database.backend, database.display, hashing, runs, rss_kib) | {
        "server_log_trouble": {s.name: s.trouble_lines()[:50] for s in (service, ceiling)},
        "bench_user_deleted": cleaned,
    }


def me_load(bench: Bench, server: Server, account: Account) -> Load:
    return bench.get_load(server, "/users/me", account, bench.options.connections)


def start_ceiling(bench: Bench, account: Account) -> Server:
    # The service's real bodies, so both servers send the same bytes.
    env = child_env(
        {ME_BODY_ENV: account.me_body.decode(), TOKEN_BODY_ENV: account.token_body.decode()}
    )
    return start_uvicorn(
        bench.processes,
        "ceiling",
        ["bench.ceiling:app"],
        env=env,
        workdir=bench.workdir,
        cpu=bench.cpus.server,
    )


def measure_under_login(
    bench: Bench, service: Server, account: Account, login_accounts: list[Account]
) -> tuple[WrkResult, WrkResult]:
    """GET /users/me while a login storm keeps the hashing pool full; both wrks on the load core.

    The storm starts first and outlasts the GET run, so the whole GET run sees it.
    """
    options = bench.options
    lead = options.storm_lead_s
    storm_load = replace(
        bench.login_load(service, login_accounts, options.login_connections),
        duration_s=lead + options.duration_s + 1,
    )
    me = me_load(bench, service, account)
    wait_until_idle(service.pid)  # the logins queued by the previous run have drained
    storm_process = start_wrk(bench.processes, storm_load, bench.cpus.load, bench.workdir)
    time.sleep(lead)  # until the hashing pool is full and logins queue
    me_result = bench.watching(service, lambda: bench.wrk(me))
    storm_result = collect(storm_process, storm_load)
    service.ensure_alive()
    return me_result, storm_result


def assemble(
    bench: Bench,
    backend: str,
    database: str,
    hashing: dict[str, Any],
    runs: dict[str, WrkResult],
    rss_kib: dict[str, int],
) -> dict[str, Any]:
    """Figures, targets and checks from the raw runs."""
    options, cpus = bench.options, bench.cpus
    me, ceiling, login = runs["me"], runs["ceiling_me"], runs["login"]
    me_storm, storm = runs["me_under_login"], runs["login_storm"]
    hash_ms = float(hashing["median_ms"])
    limit = cpus.cores_given * 1000 / hash_ms
    metrics = {
        "ceiling_rps": ceiling.rps,
        "me_rps": me.rps,
        "me_vs_ceiling": _ratio(me.rps, ceiling.rps),
        "me_p50_ms": me.latency_ms["p50"],
        "me_p99_ms": me.latency_ms["p99"],
        "hash_ms": hash_ms,
        "bcrypt_limit_rps": limit,
        "login_rps": login.rate_of(200),
        "login_vs_limit": _ratio(login.rate_of(200), limit),
        "login_p50_ms": login.latency_ms["p50"],
        "login_non_200": login.not_ok,
        "login_socket_errors": login.socket_errors,
        "me_p99_under_login_ms": me_storm.latency_ms["p99"],
        "me_p99_under_login_vs_idle": _ratio(me_storm.latency_ms["p99"], me.latency_ms["p99"]),
        "me_rps_under_login": me_storm.rps,
        "me_rps_under_login_vs_idle": _ratio(me_storm.rps, me.rps),
        "storm_login_rps": storm.rate_of(200),
        # Near the service's 30 s hashing-queue timeout, logins start getting 503.
        "storm_login_p50_ms": storm.latency_ms["p50"],
        "storm_login_503": storm.statuses.get(503, 0),
        "storm_login_other_non_200": storm.not_ok - storm.statuses.get(503, 0),
        "service_peak_rss_mib": rss_kib["service"] / 1024,
        "ceiling_peak_rss_mib": rss_kib["ceiling"] / 1024,
        "rss_ratio": _ratio(rss_kib["service"], rss_kib["ceiling"]),
    }
    targets = [
        Target("me_vs_ceiling", metrics["me_vs_ceiling"], ">=", ME_VS_CEILING_MIN),
        Target("login_vs_limit", metrics["login_vs_limit"], ">=", LOGIN_VS_LIMIT_MIN),
        Target(
            "me_p99_under_login_vs_idle",
            metrics["me_p99_under_login_vs_idle"],
            "<=",
            P99_UNDER_LOGIN_MAX,
        ),
        Target(
            "me_rps_under_login_vs_idle",
            metrics["me_rps_under_login_vs_idle"],
            ">=",
            RPS_UNDER_LOGIN_MIN,
        ),
        Target("rss_ratio", metrics["rss_ratio"], "<=", RSS_RATIO_MAX),
    ]
    checks = [
        *(clean_run(name, runs[name]) for name in ("ceiling_me", "me", "me_under_login")),
        Check("logins succeeded", login.statuses.get(200, 0) > 0, f"{login.statuses}"),
        Check("login storm ran", storm.requests > 0, f"{storm.statuses}"),
    ]
    warnings = noise_warnings(runs, backend, hashing) + few_logins_warning(login, limit)
    return {
        "mode": "standard",
        "machine": machine_info(),
        "config": {
            "db_backend": backend,
            "db_url": database,
            "duration_s": options.duration_s,
            "warmup_s": options.warmup_s,
            "wrk": f"-t{options.threads} -c{options.connections}",
            "wrk_login": f"-t{options.threads} -c{options.login_connections}",
            "storm_lead_s": options.storm_lead_s,
            "bcrypt_rounds": options.bcrypt_rounds,
            "cores_given": cpus.cores_given,
            "server_cpu": cpus.server,
            "wrk_cpu": cpus.load,
            "server_settings": "ENV=prod LOG_LEVEL=WARNING, other settings default",
        },
        "hash": hashing,
        "metrics": {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()},
        "targets": [t.to_json() for t in targets],
        "checks": [vars(c) for c in checks],
        "valid": all(c.ok for c in checks),
        "warnings": warnings,
        "runs": {name: result.to_json() for name, result in runs.items()},
    }


# Fewer logins than this and login/limit moves by more than 0.02 per login.
ENOUGH_LOGINS = 50


def few_logins_warning(login: WrkResult, limit: float) -> list[str]:
    """Logins are few (a few per second) and finish in bursts, one per hashing
    thread: a short run counts too few for login/limit to be precise."""
    count = login.statuses.get(200, 0)
    if count >= ENOUGH_LOGINS or not login.duration_s:
        return []
    step = 1 / (limit * login.duration_s)
    return [
        f"login: only {count} logins counted, each moves login/limit by {step:.2f};"
        f" a longer --duration makes that figure more precise"
    ]


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def print_standard(data: dict[str, Any]) -> None:
    m, config, machine = data["metrics"], data["config"], data["machine"]
    targets = {
        t["name"]: Target(t["name"], t["value"], t["op"], t["bound"]) for t in data["targets"]
    }
    runs = data["runs"]
    rows = [
        Row("ceiling  GET /users/me", f"{m['ceiling_rps']:,.0f} rps"),
        Row("service  GET /users/me", f"{m['me_rps']:,.0f} rps"),
        target_row("  vs ceiling", targets["me_vs_ceiling"]),
        Row("  p50 / p99", f"{m['me_p50_ms']:.2f} / {m['me_p99_ms']:.2f} ms"),
        Row(
            "  non-2xx (service / ceiling)",
            f"{runs['me']['non_2xx']} / {runs['ceiling_me']['non_2xx']}",
        ),
        Row(f"bcrypt verify, {config['bcrypt_rounds']} rounds (median)", f"{m['hash_ms']:.1f} ms"),
        Row(f"  limit, {config['cores_given']} core", f"{m['bcrypt_limit_rps']:.2f} /s"),
        Row("POST /auth/token, 200s", f"{m['login_rps']:.2f} /s"),
        target_row("  vs limit", targets["login_vs_limit"]),
        Row("  p50", f"{m['login_p50_ms']:.0f} ms"),
        Row("  non-200 / socket errors", f"{m['login_non_200']} / {m['login_socket_errors']}"),
        Row("during a login storm: GET /users/me", f"{m['me_rps_under_login']:,.0f} rps"),
        target_row("  vs idle", targets["me_rps_under_login_vs_idle"]),
        Row("  p99", f"{m['me_p99_under_login_ms']:.2f} ms"),
        target_row("  p99 vs idle", targets["me_p99_under_login_vs_idle"]),
        Row("  storm logins: 200s", f"{m['storm_login_rps']:.2f} /s"),
        Row("  storm logins: p50", f"{m['storm_login_p50_ms']:.0f} ms"),
        Row(
            "  storm logins: 503 / other non-200",
            f"{m['storm_login_503']} / {m['storm_login_other_non_200']}",
        ),
        Row(
            "peak RSS service / ceiling",
            f"{m['service_peak_rss_mib']:.1f} / {m['ceiling_peak_rss_mib']:.1f} MiB",
        ),
        target_row("  ratio", targets["rss_ratio"]),
    ]
    pinning = (
        f"servers on CPU {config['server_cpu']}, wrk on CPU {config['wrk_cpu']}"
        if config["server_cpu"] is not None
        else "one CPU: nothing pinned"
    )
    print_table(
        f"{config['db_backend']} ({config['db_url']}), {machine['date']}\n"
        f"{machine['cpu_model']}, {machine['cpu_count']} CPUs, {pinning};"
        f" Python {machine['python']}, load average {machine['load_average_1m']:.2f}\n"
        f"wrk {config['wrk']} for {config['duration_s']}s after {config['warmup_s']}s warm-up;"
        f" logins {config['wrk_login']}",
        rows,
    )
    print_checks([Check(**c) for c in data["checks"]], data["server_log_trouble"])
    print_warnings(data["warnings"])
