"""`make bench` counts what the service writes and exposes: access lines and
"lines dropped" reports as app/logger.py writes them, requests as
app/infra/metrics.py exposes them. A change of either must not leave the
bench counting nothing, nor an INFO server's access lines flooding its
list of trouble."""

from pathlib import Path
from typing import cast

from app.infra.metrics import Metrics
from app.logger import AccessEntry, JsonFormatter, LogWriter
from bench.observability import count_access_lines, requests_counted
from bench.procs import Popen
from bench.servers import Server


def entry(n: int, path: str = "/users/me", method: str = "GET") -> AccessEntry:
    return (1764547200.0 + n, f"rid-{n}", method, path, 200, 0.0012)


def test_access_lines_and_dropped_reports_are_counted(tmp_path: Path) -> None:
    log = tmp_path / "service_info.log"
    with log.open("w") as stream:
        stream.write("INFO:     Started server process [1]\n")  # uvicorn's own
        stream.flush()
        writer = LogWriter(stream, JsonFormatter(), capacity=3, interval=3600)
        for n in range(5):  # three queued, two dropped
            writer.put(entry(n))
        writer.flush()
        writer.put(entry(5, path="/users"))
        writer.put(entry(6, method="POST"))
        writer.put(entry(7, path="/ERROR"))
        writer.close()

    assert count_access_lines(log) == (3, 2)
    assert count_access_lines(log, "/users") == (1, 2)


def test_only_warnings_errors_and_tracebacks_are_trouble(tmp_path: Path) -> None:
    log = tmp_path / "service_info.log"
    with log.open("w") as stream:
        writer = LogWriter(stream, JsonFormatter(), capacity=2, interval=3600)
        for n in range(3):  # two access lines (one of a path saying ERROR), one dropped
            writer.put(entry(n, path="/ERROR/Exception"))
        writer.close()
    with log.open("a") as stream:
        stream.write("WARNING:  uvicorn says\nTraceback (most recent call last):\n")
    server = Server("service_info", cast("Popen", None), 0, log)

    trouble = server.trouble_lines()

    assert len(trouble) == 3
    assert '"level":"WARNING"' in trouble[0]
    assert "lines dropped" in trouble[0]
    assert trouble[1:] == ["WARNING:  uvicorn says", "Traceback (most recent call last):"]


def test_the_request_count_is_read_from_a_scrape() -> None:
    metrics = Metrics()
    for status in (200, 200, 201, 401):
        metrics.request("/users/me", "GET", status, 0.001)
    metrics.request("/users", "GET", 200, 0.001)
    metrics.request("/users/me", "POST", 200, 0.001)

    exposition = metrics.exposition().decode()

    assert requests_counted(exposition) == 3
    assert requests_counted(exposition, "/users") == 1
    assert requests_counted(exposition, "/health") == 0
