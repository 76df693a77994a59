"""The log writer: lines in order, in batches, off the caller's thread; a full
queue drops and counts lines instead of making anyone wait."""

import asyncio
import io
import json
import logging
import threading

import pytest
from starlette.types import Message, Receive, Scope, Send

import app.logger
from app.infra.api.request_context import RequestContextMiddleware
from app.logger import AccessEntry, JsonFormatter, LogWriter, ReadableFormatter


class StuckStream(io.StringIO):
    """Output that stops at its first write until `release`d (a full pipe, a
    stalled disk)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.released = threading.Event()

    def write(self, text: str) -> int:
        self.entered.set()
        self.released.wait()
        return super().write(text)


def entry(n: int, path: str = "/users/me") -> AccessEntry:
    return (1764547200.0 + n, f"rid-{n}", "GET", path, 200, 0.0012)


def test_lines_are_written_in_order_and_close_writes_what_is_left() -> None:
    stream = io.StringIO()
    writer = LogWriter(stream, JsonFormatter(), interval=3600)  # only close() writes
    writer.put(entry(1))
    writer.put('{"message": "a record"}')
    writer.put(entry(2))
    assert stream.getvalue() == ""  # nothing written by the caller
    writer.close()
    lines = stream.getvalue().splitlines()
    assert [json.loads(line).get("request_id") for line in lines] == ["rid-1", None, "rid-2"]
    assert json.loads(lines[1]) == {"message": "a record"}
    assert writer.dropped == 0


def test_a_full_queue_drops_and_counts_and_never_makes_the_caller_wait() -> None:
    stream = StuckStream()
    writer = LogWriter(stream, JsonFormatter(), capacity=100, interval=0.001)
    writer.put(entry(0))
    assert stream.entered.wait(10)  # the writer thread is stuck in its first write

    # Were put() to wait for room, this thread would never finish (the output
    # is stuck until released below); it finishes with the excess dropped.
    def put_many() -> None:
        for n in range(1, 251):
            writer.put(entry(n))

    putter = threading.Thread(target=put_many)
    putter.start()
    putter.join(10)
    assert not putter.is_alive(), "put() waited on a full queue"
    assert writer.dropped == 150
    stream.released.set()
    writer.close()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["request_id"] for line in lines[:-1]] == [f"rid-{n}" for n in range(101)]
    assert lines[-1]["level"] == "WARNING"
    assert lines[-1]["message"] == "log queue full: 150 lines dropped"
    assert lines[-1]["dropped"] == 150


def test_drops_are_reported_once_each() -> None:
    stream = io.StringIO()
    writer = LogWriter(stream, ReadableFormatter(), capacity=1, interval=3600)
    for n in range(3):
        writer.put(entry(n))
    writer.flush()
    writer.put(entry(3))
    writer.flush()
    writer.close()
    lines = stream.getvalue().splitlines()
    assert [line.split(" ", 1)[1] for line in lines if "dropped" in line] == [
        "WARNING app.logger: log queue full: 2 lines dropped dropped=2"
    ]
    assert len(lines) == 3  # rid-0, the report, rid-3
    assert writer.dropped == 2


def test_the_writer_thread_writes_without_being_asked() -> None:
    stream = io.StringIO()
    writer = LogWriter(stream, JsonFormatter(), interval=0.001)
    writer.put(entry(1))
    for _ in range(1000):
        if stream.getvalue():
            break
        threading.Event().wait(0.01)
    assert json.loads(stream.getvalue())["request_id"] == "rid-1"
    writer.close()


@pytest.mark.parametrize("formatter", [JsonFormatter(), ReadableFormatter()])
def test_an_access_line_is_the_line_of_the_equivalent_record(
    formatter: JsonFormatter | ReadableFormatter,
) -> None:
    at, rid, method, path, status, seconds = access = entry(7, "/users/x y")
    record = logging.LogRecord(
        "app.access", logging.INFO, __file__, 1, "%s %s %d", (method, path, status), None
    )
    record.created = at
    record.msecs = 0
    record.request_id = rid
    record.__dict__.update(
        method=method, path=path, status=status, duration_ms=round(seconds * 1000, 1)
    )
    assert formatter.format_access(access) == formatter.format(record)


def test_an_event_loop_serving_requests_never_waits_on_a_full_log_queue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The request middleware, on an event loop of its own, serves 250
    requests while the log output is stuck and the queue holds 100 lines."""
    stream = StuckStream()
    writer = LogWriter(stream, JsonFormatter(), capacity=100, interval=0.001)
    writer.put(entry(0))
    assert stream.entered.wait(10)
    monkeypatch.setattr(app.logger, "_writer", writer)
    access_log = logging.getLogger("app.access")
    level = access_log.level
    access_log.setLevel(logging.INFO)  # (setLevel also clears isEnabledFor's cache)
    served: list[int] = []

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def serve_requests() -> None:
        middleware = RequestContextMiddleware(endpoint)
        for n in range(250):
            scope = {"type": "http", "method": "GET", "path": f"/r/{n}", "headers": []}

            async def receive() -> Message:
                return {"type": "http.request", "body": b""}

            async def send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    served.append(message["status"])

            await middleware(scope, receive, send)

    loop = threading.Thread(target=asyncio.run, args=(serve_requests(),))
    try:
        loop.start()
        loop.join(10)  # were it waiting for room in the queue, it would never finish
    finally:
        access_log.setLevel(level)
    assert not loop.is_alive(), "the event loop waited on the full log queue"
    assert served == [204] * 250
    assert writer.dropped == 150
    stream.released.set()
    writer.close()
    paths = [json.loads(line).get("path") for line in stream.getvalue().splitlines()]
    assert paths[1:-1] == [f"/r/{n}" for n in range(100)]


class _FailsOnce(JsonFormatter):
    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def format_access(self, entry: AccessEntry) -> str:
        if not self.failed:
            self.failed = True
            raise RuntimeError("a formatting bug")
        return super().format_access(entry)


def test_a_failing_batch_does_not_stop_the_writer(capsys: pytest.CaptureFixture[str]) -> None:
    stream = io.StringIO()
    writer = LogWriter(stream, _FailsOnce(), interval=0.001)
    writer.put(entry(1))
    for _ in range(1000):  # the thread takes it and fails
        if not writer._lines:
            break
        threading.Event().wait(0.01)
    writer.put(entry(2))
    for _ in range(1000):  # written by the thread, still running: not by close()
        if stream.getvalue():
            break
        threading.Event().wait(0.01)
    assert [json.loads(line)["request_id"] for line in stream.getvalue().splitlines()] == ["rid-2"]
    writer.close()
    assert "RuntimeError: a formatting bug" in capsys.readouterr().err
