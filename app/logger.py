"""Logging is configured once, here: JSON lines in production, readable lines
elsewhere, each with the request id of the request it belongs to. A record
is one line (a readable one's traceback follows it, indented): control
characters in its message and fields are escaped.

Records carry ids, paths and event names, never secrets: no request bodies,
headers, query strings, passwords, hashes or tokens are logged.

Lines are written off the event loop, in batches, by one thread per process
(LogWriter), from a bounded queue that never blocks: when it is full (the
output stalls), lines are dropped and counted, and the next batch says how
many. The access line, one per request, skips the standard library's
LogRecord (its construction alone cost more than the rest of the line) and
is formatted by the writer thread with orjson; other records (audit events,
warnings) go through `logging` as usual, formatted where they are logged, as
the standard QueueHandler does, and join the same queue, so lines keep their
order. The standard QueueListener is not used: it writes and flushes each
record apart, and the standard QueueHandler blocks or raises when its queue
is full.
"""

import atexit
import json
import logging
import sys
import threading
import time
import traceback
from collections import deque
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any, Final

import orjson

# Set by the request middleware for the duration of each request.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# Lines the queue holds at most (about a second of a busy worker's access lines).
QUEUE_CAPACITY: Final = 16_384
# How often the writer thread writes what has queued up (and sooner when the
# queue is half full).
FLUSH_SECONDS: Final = 0.05
ACCESS_LOGGER: Final = "app.access"

# Attributes every LogRecord has; anything else was passed in `extra=`.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "request_id",
}
_handler: logging.Handler | None = None
_writer: "LogWriter | None" = None
_access = logging.getLogger(ACCESS_LOGGER)

# C0, DEL, C1 and the Unicode line and paragraph separators: each can end a
# line, or rewrite one on a terminal, so input holding one could forge a record.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))} | {
    0x09: "\\t",
    0x0A: "\\n",
    0x0D: "\\r",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}
_ESCAPES_BUT_NEWLINE = {c: e for c, e in _ESCAPES.items() if c != 0x0A}
_INDENT = "    "

# An access line as the request middleware hands it over: time.time() at the
# end, request id, method, path, status, duration in seconds.
AccessEntry = tuple[float, str, str, str, int, float]


def _one_line(text: str) -> str:
    # Almost every line is printable as it is: one C-speed scan and no copy.
    return text if text.isprintable() else text.translate(_ESCAPES)


def _indented(text: str) -> str:
    return _INDENT + text.translate(_ESCAPES_BUT_NEWLINE).replace("\n", "\n" + _INDENT)


def _json_line(fields: dict[str, Any]) -> str:
    """One line of ASCII JSON: control characters, DEL, C1 and every other
    non-ASCII character escaped. orjson writes the common, plain line; the
    standard library the others (it escapes what orjson writes as UTF-8)."""
    try:
        line = orjson.dumps(fields, default=str).decode()
    except TypeError:  # an int beyond 64 bits, a key that is not a string
        line = ""
    if line.isascii() and line.isprintable():
        return line
    return json.dumps(fields, default=str, separators=(",", ":"))


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


def _access_message(method: str, path: str, status: int) -> str:
    return f"{method} {path} {status}"


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if rid := getattr(record, "request_id", None):
            line["request_id"] = rid
        line.update(_extras(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _json_line(line)

    def format_access(self, entry: AccessEntry) -> str:
        """The line `format` would write for the access record (the writer
        thread calls it, the only caller: the time cache is not shared)."""
        at, rid, method, path, status, seconds = entry
        second = int(at)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        millis = int((at - second) * 1000)
        return _json_line(
            {
                "time": f"{self._second_text}.{millis:03d}+00:00",
                "level": "INFO",
                "logger": ACCESS_LOGGER,
                "message": _access_message(method, path, status),
                "request_id": rid,
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(seconds * 1000, 1),
            }
        )


class ReadableFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S%z")

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        text = self.formatMessage(record)
        fields = _extras(record)
        if rid := getattr(record, "request_id", None):
            fields = {"request_id": rid, **fields}
        if fields:
            text += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        text = _one_line(text)
        # Traceback lines stay apart, to be read, but indented: no input can start a line.
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text += "\n" + _indented(record.exc_text)
        if record.stack_info:
            text += "\n" + _indented(self.formatStack(record.stack_info))
        return text

    def format_access(self, entry: AccessEntry) -> str:
        at, rid, method, path, status, seconds = entry
        when = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(at))
        message = _access_message(method, path, status)
        fields = f"method={method} path={path} status={status} duration_ms={seconds * 1000:.1f}"
        return _one_line(f"{when} INFO {ACCESS_LOGGER}: {message} request_id={rid} {fields}")


Formatter = JsonFormatter | ReadableFormatter


class LogWriter:
    """Writes queued lines to `stream` from a thread of its own, a batch at a
    time. `put` never blocks: beyond `capacity` queued lines it drops the
    line and counts it (`dropped`); the next batch ends with a WARNING that
    says how many were dropped since the last."""

    def __init__(
        self,
        stream: IO[str],
        formatter: Formatter,
        capacity: int = QUEUE_CAPACITY,
        interval: float = FLUSH_SECONDS,
    ) -> None:
        self.stream, self.formatter = stream, formatter
        self.capacity, self.interval = capacity, interval
        self.dropped = 0  # since the process started
        self._reported = 0
        # deque.append and popleft are atomic: the loop and the writer share
        # it without a lock. Lines are a str (a formatted record) or an AccessEntry.
        self._lines: deque[str | AccessEntry] = deque()
        self._high_water = capacity // 2
        self._drop_lock = threading.Lock()
        self._write_lock = threading.Lock()  # one batch at a time
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    def put(self, line: "str | AccessEntry") -> None:
        queued = len(self._lines)
        if queued < self.capacity:
            self._lines.append(line)
            if queued == self._high_water:
                self._wake.set()
        else:
            with self._drop_lock:
                self.dropped += 1

    def flush(self, timeout: float = -1) -> bool:
        """Writes what is queued now; False if another batch held the stream
        beyond `timeout` seconds (negative: no limit)."""
        if not self._write_lock.acquire(timeout=timeout):
            return False
        try:
            self._write_batch()
        finally:
            self._write_lock.release()
        return True

    def close(self, timeout: float = 2.0) -> None:
        """Stops the thread and writes what is left, unless the stream is stuck."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        self.flush(timeout)

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # a bug: its batch is lost, but not the lines after it
                traceback.print_exc(file=sys.stderr)

    def _write_batch(self) -> None:
        lines, dropped = self._lines, self.dropped - self._reported
        count = len(lines)
        if not count and not dropped:
            return
        access = self.formatter.format_access
        text = [
            line if isinstance(line, str) else access(line)
            for line in (lines.popleft() for _ in range(count))
        ]
        if dropped:
            self._reported += dropped
            text.append(self._dropped_line(dropped))
        text.append("")
        self._write("\n".join(text))

    def _write(self, text: str) -> None:
        try:
            buffer = getattr(self.stream, "buffer", None)
            if buffer is not None:
                self.stream.flush()  # what was printed to the stream comes first
                buffer.write(text.encode())
                buffer.flush()
            else:
                self.stream.write(text)
                self.stream.flush()
        except (OSError, ValueError):  # closed or broken output: nothing to tell it to
            pass

    def _dropped_line(self, dropped: int) -> str:
        record = logging.LogRecord(
            "app.logger",
            logging.WARNING,
            __file__,
            0,
            "log queue full: %d lines dropped",
            (dropped,),
            None,
        )
        record.dropped = dropped
        return self.formatter.format(record)


class _QueueingHandler(logging.Handler):
    """Formats a record where it is logged and queues the line for the writer."""

    def __init__(self, writer: LogWriter) -> None:
        super().__init__()
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.writer.put(self.format(record))
        except Exception:
            self.handleError(record)


def access(rid: str, method: str, path: str, status: int, seconds: float) -> None:
    """Queues the access line of a request (an INFO record of `app.access`)."""
    if _writer is not None and _access.isEnabledFor(logging.INFO):
        _writer.put((time.time(), rid, method, path, status, seconds))


def writer() -> LogWriter | None:
    """The process's writer, once configure_logging has run."""
    return _writer


def configure_logging(level: str = "INFO", json_lines: bool = False) -> None:
    global _handler, _writer
    logging.getLogger().setLevel(level)
    formatter: Formatter = JsonFormatter() if json_lines else ReadableFormatter()
    if _writer is None:
        # No caller, thread or process lookups for records: no line shows them.
        logging._srcfile = None
        logging.logThreads = False
        logging.logProcesses = False
        logging.logMultiprocessing = False
        _writer = LogWriter(sys.stdout, formatter)
        atexit.register(_writer.close)
        _handler = _QueueingHandler(_writer)
        _handler.addFilter(_RequestIdFilter())
        logging.getLogger().addHandler(_handler)
        # Our access line replaces uvicorn's, which would log query strings.
        logging.getLogger("uvicorn.access").disabled = True
    # Libraries that log statements with their parameters (password hashes
    # among them) at INFO or DEBUG stay quiet even when LOG_LEVEL=DEBUG.
    for chatty in ("sqlalchemy", "aiosqlite", "asyncpg", "passlib"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    assert _handler is not None
    _handler.setFormatter(formatter)
    _writer.formatter = formatter
