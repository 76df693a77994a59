"""Logging is configured once, here: JSON lines in production, readable lines
elsewhere, each with the request id of the request it belongs to. A record
is one line (a readable one's traceback follows it, indented): control
characters in its message and fields are escaped.

Records carry ids, paths and event names, never secrets: no request bodies,
headers, query strings, passwords, hashes or tokens are logged."""

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

# Set by the request middleware for the duration of each request.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else was passed in `extra=`.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "request_id",
}
_handler: logging.Handler | None = None

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


def _one_line(text: str) -> str:
    # Almost every line is printable as it is: one C-speed scan and no copy.
    return text if text.isprintable() else text.translate(_ESCAPES)


def _indented(text: str) -> str:
    return _INDENT + text.translate(_ESCAPES_BUT_NEWLINE).replace("\n", "\n" + _INDENT)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
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
        return json.dumps(line, default=str)


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


def configure_logging(level: str = "INFO", json_lines: bool = False) -> None:
    global _handler
    logging.getLogger().setLevel(level)
    if _handler is None:
        _handler = logging.StreamHandler(sys.stdout)
        _handler.addFilter(_RequestIdFilter())
        logging.getLogger().addHandler(_handler)
        # Our access line replaces uvicorn's, which would log query strings.
        logging.getLogger("uvicorn.access").disabled = True
    # Libraries that log statements with their parameters (password hashes
    # among them) at INFO or DEBUG stay quiet even when LOG_LEVEL=DEBUG.
    for chatty in ("sqlalchemy", "aiosqlite", "asyncpg", "passlib"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    _handler.setFormatter(JsonFormatter() if json_lines else ReadableFormatter())
