"""The standard run: the service against the ceiling, idle and under a login storm.

Order matters: the GET runs first, on an idle service: the service's two
(LOG_LEVEL=WARNING, metrics off) around those with access lines on
(LOG_LEVEL=INFO) and with metrics on (bench.observability), the baseline's
between those (me, info, metrics, baseline x 2, metrics, info, me_2), so
each comparison is A B B A; then the refreshes; bcrypt is timed on the
server core just before the logins, so both see the same machine; then the
storm, because it leaves logins queued in the service; forgot last, because
each leaves a request for the mail dispatcher to work through.
"""

import json
import time
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

from bench import baseline, mail_sink, observability
from bench.api import Account, log_in, more_sessions, new_credentials, register
from bench.ceiling import ME_BODY_ENV, TOKEN_BODY_ENV
from bench.database import Database, delete_users, fresh_database
from bench.harness import Bench, refresh_chains
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
from bench.wrk_runner import POST_JSON, Load, WrkResult, collect, start_wrk

# The targets.
ME_VS_CEILING_MIN = 0.40
LOGIN_VS_LIMIT_MIN = 0.93
P99_UNDER_LOGIN_MAX = 3.0
RPS_UNDER_LOGIN_MIN = 0.8
RSS_RATIO_MAX = 1.5
REFRESH_VS_BARE_MIN = 0.25
ME_VS_BASELINE_MIN = 0.9
FORGOT_SPREAD_MAX = 0.10


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
    refresher = register(service.url, "Bench Refresher", *new_credentials("bench-refresh"))
    refresh_tokens = more_sessions(
        service.url, refresher, refresh_chains(options.refresh_connections)
    )
    ceiling = start_ceiling(bench, account)
    bare = start_bare_fastapi(bench, account)
    # Started now, so both runs of the service see the same servers idle beside it.
    observed = observability.start(bench, database, account)
    print(f"service pid {service.pid} on {service.url}, ceiling pid {ceiling.pid} on {ceiling.url}")

    print(f"GET /users/me on the ceiling ({options.duration_s}s) ...")
    ceiling_me = bench.measure(ceiling, me_load(bench, ceiling, account))
    print(f"GET /users/me on the service ({options.duration_s}s) ...")
    me = bench.measure(service, me_load(bench, service, account))
    runs: dict[str, WrkResult] = {"ceiling_me": ceiling_me, "me": me}
    with ExitStack() as stack:
        runs |= observability.measure(bench, observed, second=False)
        if options.baseline:
            runs |= measure_baseline(bench, stack, database, account)
        runs |= observability.measure(bench, observed, second=True)
        print(f"GET /users/me on the service again ({options.duration_s}s) ...")
        runs["me_2"] = bench.measure(service, me_load(bench, service, account))
    print("counting the access lines and the metrics of GET /users/me ...")
    counts = observability.count(bench, observed)
    runs |= measure_refresh(bench, bare, service, refresh_tokens)
    # Just before the logins, so both see the same machine.
    print("timing bcrypt on the server core ...")
    wait_until_idle(service.pid)
    hashing = bench.hash_cost()
    print(f"POST /auth/token on the service ({options.duration_s}s) ...")
    # No warm-up: it would leave a queue of logins to drain, and the set-up
    # already went through the whole login path once.
    runs["login"] = bench.measure(
        service,
        bench.login_load(service, login_accounts, options.login_connections),
        warm_up=False,
    )
    print(f"GET /users/me during a login storm ({options.duration_s}s) ...")
    runs["me_under_login"], runs["login_storm"] = measure_under_login(
        bench, service, account, login_accounts
    )
    # Last: each forgot leaves a recorded request that the service's mail
    # dispatcher works through afterwards, in the background.
    nobody = new_credentials("bench-nobody")[0]
    runs |= measure_forgot(bench, service, account, nobody)

    rss_kib = {s.name: s.peak_rss_kib() for s in (service, ceiling)}
    emails = [a.email for a in (account, refresher, *login_accounts)]
    cleaned = delete_users(database, emails, others=[nobody]) == len(emails)
    servers = (service, ceiling, bare, observed.info.server, observed.metrics.server)
    return assemble(bench, database.backend, database.display, hashing, runs, rss_kib, counts) | {
        "server_log_trouble": {s.name: s.trouble_lines()[:50] for s in servers},
        "bench_user_deleted": cleaned,
        "mail_received_by_sink": mail_sink.received(),
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


def start_bare_fastapi(bench: Bench, account: Account) -> Server:
    return start_uvicorn(
        bench.processes,
        "bare_fastapi",
        ["bench.bare_token:app"],
        env=child_env({TOKEN_BODY_ENV: account.token_body.decode()}),
        workdir=bench.workdir,
        cpu=bench.cpus.server,
    )


def measure_baseline(
    bench: Bench, stack: ExitStack, database: Database, account: Account
) -> dict[str, WrkResult]:
    """GET /users/me on the service before the session check, twice: between
    today's `me` and `me_2` (A B B A), so a drift of the machine weighs on both alike."""
    rev = bench.options.baseline or ""
    print(f"checking out and migrating the baseline {rev} ...")
    tree = stack.enter_context(baseline.checked_out(rev, bench.workdir, database))
    before = baseline.serve(
        bench.processes, tree, bench.options.bcrypt_rounds, bench.workdir, bench.cpus.server
    )
    try:
        register(before.url, "Bench User", account.email, account.password)
        bearer = log_in(before.url, account.email, account.password)
        print(f"GET /users/me on the baseline {rev}, twice ...")
        first = bench.measure(before, me_load(bench, before, bearer))
        second = bench.measure(before, me_load(bench, before, bearer))
    finally:
        before.process.terminate()
        before.process.wait(timeout=30)
    return {"baseline_me": first, "baseline_me_2": second}


def measure_refresh(
    bench: Bench, bare: Server, service: Server, refresh_tokens: list[str]
) -> dict[str, WrkResult]:
    """grant_type=refresh_token on the service, each chain spending its last
    token, against the bare FastAPI app parsing the same form."""
    connections, seconds = bench.options.refresh_connections, bench.options.duration_s
    print(f"POST /auth/token (refresh form) on the bare FastAPI app ({seconds}s) ...")
    bare_run = bench.measure(bare, bench.refresh_load(bare, refresh_tokens, connections))
    print(f"POST /auth/token grant_type=refresh_token on the service ({seconds}s) ...")
    # No warm-up: a warm-up's wrk would take the chains' newest tokens with it.
    refresh = bench.measure(
        service, bench.refresh_load(service, refresh_tokens, connections), warm_up=False
    )
    return {"bare_refresh_form": bare_run, "refresh": refresh}


def measure_forgot(
    bench: Bench, service: Server, account: Account, unknown: str
) -> dict[str, WrkResult]:
    """POST /auth/password/forgot, one at a time, for a registered address and
    an unknown one, alternating (A B B A): the medians must not tell them apart."""
    seconds = max(2, bench.options.duration_s // 2)
    print(f"POST /auth/password/forgot, known and unknown, 4 x {seconds}s ...")

    def forgot(email: str) -> WrkResult:
        load = Load(
            url=service.url + "/auth/password/forgot",
            script=POST_JSON,
            connections=1,
            duration_s=seconds,
            script_env={"BENCH_JSON_BODY": json.dumps({"email": email})},
        )
        return bench.measure(service, load, warm_up=False)

    known_1, unknown_1 = forgot(account.email), forgot(unknown)
    unknown_2, known_2 = forgot(unknown), forgot(account.email)
    return {
        "forgot_known": known_1,
        "forgot_unknown": unknown_1,
        "forgot_unknown_2": unknown_2,
        "forgot_known_2": known_2,
    }


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
    counts: observability.Counts,
) -> dict[str, Any]:
    """Figures, targets and checks from the raw runs and the observability counts."""
    options, cpus = bench.options, bench.cpus
    me, ceiling, login = runs["me"], runs["ceiling_me"], runs["login"]
    me_storm, storm = runs["me_under_login"], runs["login_storm"]
    hash_ms = float(hashing["median_ms"])
    limit = cpus.cores_given * 1000 / hash_ms
    metrics = (
        {
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
        | refresh_metrics(runs)
        | forgot_metrics(runs)
        | baseline_metrics(runs)
        | observability.figures(runs, counts)
    )
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
        Target("refresh_vs_bare", metrics["refresh_vs_bare"], ">=", REFRESH_VS_BARE_MIN),
        Target("forgot_p50_spread", metrics["forgot_p50_spread"], "<=", FORGOT_SPREAD_MAX),
        *observability.targets(metrics),
    ]
    if "me_vs_baseline" in metrics:
        targets.append(
            Target("me_vs_baseline", metrics["me_vs_baseline"], ">=", ME_VS_BASELINE_MIN)
        )
    checks = [
        *(clean_run(name, runs[name]) for name in ("ceiling_me", "me", "me_2", "me_under_login")),
        *(clean_run(name, run) for name, run in runs.items() if name.startswith("baseline")),
        Check("logins succeeded", login.statuses.get(200, 0) > 0, f"{login.statuses}"),
        Check("login storm ran", storm.requests > 0, f"{storm.statuses}"),
        *(only(name, runs[name], 200) for name in ("bare_refresh_form", "refresh")),
        *(only(name, run, 202) for name, run in runs.items() if name.startswith("forgot")),
        *observability.checks(runs, counts),
    ]
    warnings = (
        noise_warnings(runs, backend, hashing)
        + few_logins_warning(login, limit)
        + observability.warnings(counts)
    )
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
            "server_settings": (
                "ENV=prod LOG_LEVEL=WARNING EMAIL_BACKEND=smtp (to bench.mail_sink)"
                " RECOVERY_REQUESTS_PER_HOUR=10000000, other settings default"
            ),
            "observability_servers": (
                "service_info: LOG_LEVEL=INFO (access lines to its log file);"
                " service_metrics: METRICS_ENABLED=true, PROMETHEUS_MULTIPROC_DIR a fresh"
                " directory; otherwise the service's settings, database and core"
            ),
            "wrk_refresh": f"-t{options.threads} -c{options.refresh_connections}",
            "wrk_forgot": "-t1 -c1",
            "baseline": options.baseline,
        },
        "hash": hashing,
        "metrics": {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()},
        "targets": [t.to_json() for t in targets],
        "checks": [vars(c) for c in checks],
        "valid": all(c.ok for c in checks),
        "warnings": warnings,
        "runs": {name: result.to_json() for name, result in runs.items()},
        "observability": counts.details(),
    }


def only(name: str, run: WrkResult, status: int) -> Check:
    """Every answer was `status`, and there were some."""
    ok = run.requests > 0 and run.statuses.get(status, 0) == run.requests
    return Check(f"{name}: only {status}s", ok, f"{run.statuses}, socket errors {run.errors}")


def refresh_metrics(runs: dict[str, WrkResult]) -> dict[str, float]:
    refresh, bare = runs["refresh"], runs["bare_refresh_form"]
    return {
        "bare_fastapi_form_rps": bare.rate_of(200),
        "refresh_rps": refresh.rate_of(200),
        "refresh_vs_bare": _ratio(refresh.rate_of(200), bare.rate_of(200)),
        "refresh_p50_ms": refresh.latency_ms["p50"],
        "refresh_p99_ms": refresh.latency_ms["p99"],
    }


def forgot_metrics(runs: dict[str, WrkResult]) -> dict[str, float]:
    """The p50 of each address, the mean of its two runs; the spread is their
    difference over the smaller."""
    known = (runs["forgot_known"].latency_ms["p50"] + runs["forgot_known_2"].latency_ms["p50"]) / 2
    unknown = (
        runs["forgot_unknown"].latency_ms["p50"] + runs["forgot_unknown_2"].latency_ms["p50"]
    ) / 2
    return {
        "forgot_known_p50_ms": known,
        "forgot_unknown_p50_ms": unknown,
        "forgot_p50_spread": _ratio(abs(known - unknown), min(known, unknown)),
    }


def baseline_metrics(runs: dict[str, WrkResult]) -> dict[str, float]:
    """me_rps before the session check, its two runs between today's two (A B B A)."""
    if "baseline_me" not in runs:
        return {}
    today = (runs["me"].rps + runs["me_2"].rps) / 2
    before = (runs["baseline_me"].rps + runs["baseline_me_2"].rps) / 2
    return {
        "me_rps_mean_abba": today,
        "baseline_me_rps": before,
        "me_vs_baseline": _ratio(today, before),
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


def baseline_rows(
    m: dict[str, Any], config: dict[str, Any], targets: dict[str, Target]
) -> list[Row]:
    if "me_vs_baseline" not in targets:
        return []
    return [
        Row(
            f"GET /users/me before sessions ({config['baseline']}) / today, A B B A",
            f"{m['baseline_me_rps']:,.0f} / {m['me_rps_mean_abba']:,.0f} rps",
        ),
        target_row("  today vs before", targets["me_vs_baseline"]),
    ]


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
        *baseline_rows(m, config, targets),
        *observability.rows(m, targets),
        Row("bare FastAPI  POST /auth/token (form)", f"{m['bare_fastapi_form_rps']:,.0f} rps"),
        Row("service  grant_type=refresh_token", f"{m['refresh_rps']:,.0f} rps"),
        target_row("  vs bare FastAPI", targets["refresh_vs_bare"]),
        Row("  p50 / p99", f"{m['refresh_p50_ms']:.2f} / {m['refresh_p99_ms']:.2f} ms"),
        Row(
            "POST /auth/password/forgot p50, known / unknown",
            f"{m['forgot_known_p50_ms']:.2f} / {m['forgot_unknown_p50_ms']:.2f} ms",
        ),
        target_row("  spread", targets["forgot_p50_spread"]),
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
