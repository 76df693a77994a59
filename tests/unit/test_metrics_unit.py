"""Metrics in one process: requests counted in batches by bounded labels, and
the multiprocess directory's bookkeeping of dead workers."""

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from app.infra.metrics import Metrics, _forget_dead_processes


def counts(metrics: Metrics) -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["route"], s.labels["method"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for s in family.samples
        if s.name == "http_request_duration_seconds_count"
    }


def test_requests_are_counted_at_the_next_flush_by_bounded_labels() -> None:
    metrics = Metrics()
    metrics.request("/users/{user_id}", "GET", 200, 0.001)
    metrics.request("/users/{user_id}", "GET", 204, 0.002)
    metrics.request("unmatched", "PROPFIND", 404, 0.001)
    metrics.request("/users", "get", 405, 0.001)  # methods are case-sensitive: not GET
    assert (
        metrics.registry.get_sample_value(
            "http_request_duration_seconds_count",
            {"route": "/users/{user_id}", "method": "GET", "status": "2xx"},
        )
        is None
    )  # noted, not yet counted
    assert counts(metrics) == {  # a scrape counts what was noted first
        ("/users/{user_id}", "GET", "2xx"): 2,
        ("unmatched", "OTHER", "4xx"): 1,
        ("/users", "OTHER", "4xx"): 1,
    }


def test_the_counting_thread_counts_and_close_counts_the_rest() -> None:
    metrics = Metrics()
    metrics.start()
    metrics.request("/health", "GET", 200, 0.001)
    metrics.close()
    assert (
        metrics.registry.get_sample_value(
            "http_request_duration_seconds_count",
            {"route": "/health", "method": "GET", "status": "2xx"},
        )
        == 1
    )


def test_live_gauges_of_dead_workers_are_forgotten(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid, live_pid = int(dead.stdout), os.getpid()
    files = [
        f"gauge_livesum_{dead_pid}.db",
        f"gauge_livesum_{live_pid}.db",
        f"gauge_mostrecent_{dead_pid}.db",
        f"counter_{dead_pid}.db",
        f"histogram_{dead_pid}.db",
    ]
    for name in files:
        (tmp_path / name).write_bytes(b"")
    _forget_dead_processes(str(tmp_path))
    # A dead worker's counts stay (counters never go back); its live gauges end.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files[1:])
