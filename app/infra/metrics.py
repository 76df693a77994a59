"""Prometheus metrics, with prometheus-client (docs/operations.md lists them).

One `Metrics` per process. With several worker processes, the client's
multiprocess mode sums them: each process writes its values to files in
PROMETHEUS_MULTIPROC_DIR (set in the environment before start-up, an
empty directory: `make serve` and the image see to it) and a scrape, served
by any worker, reads them all. Without it, a scrape shows its own process.

Labels are bounded: a route's template, never the raw path ("unmatched" when
no route matched), a known method or "OTHER", a status class.
"""

import glob
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Final, Literal, get_args

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_DIR_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
# How long a request may wait to be counted (see Metrics.flush).
FLUSH_SECONDS: Final = 1.0
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
UNMATCHED: Final = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# From a cached token check (about a millisecond) to a login's bcrypt (a quarter second).
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db")

LoginOutcome = Literal["success", "invalid", "locked", "shed", "unverified", "error"]
RefreshOutcome = Literal["success", "invalid", "reused", "error"]


class Metrics:
    def __init__(self) -> None:
        # A registry of its own (tests build several apps in one process);
        # in multiprocess mode it is not read: the files are.
        self.registry = r = CollectorRegistry(auto_describe=True)
        self._multiprocess_dir = os.environ.get(MULTIPROC_DIR_ENV) or None
        if self._multiprocess_dir:
            os.makedirs(self._multiprocess_dir, exist_ok=True)
        self._requests = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route template, method and status class;"
            " its _count is the number of requests",
            ["route", "method", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._logins = Counter(
            "auth_logins_total",
            "Password grants at POST /auth/token, by outcome",
            ["outcome"],
            registry=r,
        )
        self._refreshes = Counter(
            "auth_refreshes_total",
            'Refresh grants at POST /auth/token, by outcome ("reused": a spent refresh'
            " token presented again, its session ended)",
            ["outcome"],
            registry=r,
        )
        self._hash_waiting = Gauge(
            "password_hash_queue_depth",
            "Password hashes and checks waiting for a hashing thread",
            multiprocess_mode="livesum",
            registry=r,
        )
        self._hash_wait = Histogram(
            "password_hash_queue_wait_seconds",
            "Time a password hash or check waited for a hashing thread",
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self._pool_in_use = Gauge(
            "db_pool_connections_in_use",
            "Connections of the database pool checked out",
            multiprocess_mode="livesum",
            registry=r,
        )
        self._db_unavailable = Counter(
            "db_unavailable_total",
            "Requests answered 503 because the database was unreachable or refused",
            registry=r,
        )
        self._outbox = Gauge(
            "outbox_messages",
            "Mail in the outbox, by state (pending: to be sent; failed: given up)",
            ["state"],
            multiprocess_mode="mostrecent",
            registry=r,
        )
        self._dropped = Counter(
            "log_lines_dropped_total",
            "Log lines dropped because the log output did not keep up",
            registry=r,
        )
        self._dropped_seen = 0
        self._children: dict[tuple[str, str, int], Callable[[float], None]] = {}
        # Appended by the event loop, popped by the counting thread: both atomic.
        self._requests_pending: deque[tuple[str, str, int, float]] = deque()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        for outcome in get_args(LoginOutcome):
            self._logins.labels(outcome)
        for outcome in get_args(RefreshOutcome):
            self._refreshes.labels(outcome)

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Notes a request; it is counted within FLUSH_SECONDS (see `flush`)."""
        self._requests_pending.append((route, method, status, seconds))

    def flush(self) -> None:
        """Counts the requests noted so far. Counting each as it ends cost
        requests/s (a tenth, in multiprocess mode, where every count is a write
        to a shared file): the request path only notes it, and the counting
        thread counts in batches, every FLUSH_SECONDS and before each scrape."""
        pending, children = self._requests_pending, self._children
        for _ in range(len(pending)):
            route, method, status, seconds = pending.popleft()
            if method not in _METHODS:
                method = "OTHER"
            key = (route, method, status // 100)
            observe = children.get(key)
            if observe is None:
                labels = (route, method, f"{status // 100}xx")
                observe = children[key] = self._requests.labels(*labels).observe
            observe(seconds)

    def login(self, outcome: LoginOutcome) -> None:
        self._logins.labels(outcome).inc()

    def refresh(self, outcome: RefreshOutcome) -> None:
        self._refreshes.labels(outcome).inc()

    def hash_waited(self, seconds: float) -> None:
        self._hash_wait.observe(seconds)

    def database_unavailable(self) -> None:
        self._db_unavailable.inc()

    def sample(self, *, hash_waiting: int, pool_in_use: int | None, dropped_lines: int) -> None:
        """This process's gauges (and the dropped-line count), sampled."""
        self._hash_waiting.set(hash_waiting)
        if pool_in_use is not None:
            self._pool_in_use.set(pool_in_use)
        if dropped_lines > self._dropped_seen:
            self._dropped.inc(dropped_lines - self._dropped_seen)
            self._dropped_seen = dropped_lines

    def outbox(self, pending: int, failed: int) -> None:
        self._outbox.labels("pending").set(pending)
        self._outbox.labels("failed").set(failed)

    def start(self) -> None:
        """Starts the counting thread."""
        self._thread = threading.Thread(target=self._count, name="metrics", daemon=True)
        self._thread.start()

    def _count(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self._flush_now()

    def _flush_now(self) -> None:
        with self._flush_lock:  # one batch at a time: a scrape's, or the thread's
            self.flush()

    def exposition(self) -> bytes:
        """The text format, of every process in multiprocess mode. It counts this
        process's requests first, and reads files: call it off the event loop."""
        self._flush_now()
        if not self._multiprocess_dir:
            return generate_latest(self.registry)
        _forget_dead_processes(self._multiprocess_dir)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, self._multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def close(self) -> None:
        """This process stops: what it noted is counted, its live gauges end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._flush_now()
        if self._multiprocess_dir:
            multiprocess.mark_process_dead(os.getpid(), self._multiprocess_dir)  # type: ignore[no-untyped-call]


def _forget_dead_processes(path: str) -> None:
    # A worker killed without its shutdown (SIGKILL, OOM) leaves its live
    # gauges behind: they would count forever.
    for pid in _pids(glob.glob(os.path.join(path, "gauge_live*.db"))):
        if not _alive(pid):
            multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


def _pids(files: Iterable[str]) -> set[int]:
    return {int(m[1]) for f in files if (m := _LIVE_GAUGE_FILE.fullmatch(os.path.basename(f)))}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
