"""Logging is configured once, here: JSON lines in production, readable lines
elsewhere, each with the request id of the request it belongs to.

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
        text = super().format(record)
        fields = _extras(record)
        if rid := getattr(record, "request_id", None):
            fields = {"request_id": rid, **fields}
        if fields:
            text += " " + " ".join(f"{k}={v}" for k, v in fields.items())
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
