"""One record is one line in either log format, whatever its message and fields
hold: input (a path, an exception's message) cannot forge a record."""

import json
import logging
import sys

import pytest

from app.logger import JsonFormatter, ReadableFormatter

# C0, DEL, C1 and the Unicode line and paragraph separators.
CONTROLS = "".join(map(chr, [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]))
FORGED = "\n2026-01-01T00:00:00+0000 INFO app.audit: user.deleted user_id=u1"


def a_record(message: str = "event", *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("app.test", logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


@pytest.mark.parametrize("formatter", [ReadableFormatter(), JsonFormatter()])
def test_every_control_character_is_escaped_in_message_and_fields(
    formatter: logging.Formatter,
) -> None:
    text = formatter.format(a_record("got %s", CONTROLS, field=CONTROLS, request_id=CONTROLS))
    assert text.splitlines() == [text]
    assert text.isprintable()


def test_a_readable_extra_field_with_a_newline_is_escaped() -> None:
    text = ReadableFormatter().format(a_record("user.deleted", user_id="u1" + FORGED))
    assert text.splitlines() == [text]
    forged = "\\n2026-01-01T00:00:00+0000 INFO app.audit: user.deleted user_id=u1"
    assert text.endswith(f": user.deleted user_id=u1{forged}")


def test_a_json_field_with_a_newline_is_escaped_and_round_trips() -> None:
    text = JsonFormatter().format(a_record("user.deleted", user_id="u1" + FORGED + "\u2028"))
    assert text.splitlines() == [text]
    assert "\\n2026-01-01" in text
    assert "\\u2028" in text
    assert json.loads(text)["user_id"] == "u1" + FORGED + "\u2028"


def test_printable_text_is_left_as_it_is() -> None:
    text = ReadableFormatter().format(a_record("Zoë 東京 \\n %s", "tab\\t", who="Ann Ünal"))
    assert text.endswith(" INFO app.test: Zoë 東京 \\n tab\\t who=Ann Ünal")


def test_a_traceback_stays_readable_but_no_input_starts_a_line() -> None:
    try:
        raise ValueError("bad path /x" + FORGED + "\r\x1b[2K")
    except ValueError:
        record = a_record("failed")
        record.exc_info = sys.exc_info()
    text = ReadableFormatter().format(record)
    first, *rest = text.split("\n")
    assert first.endswith("INFO app.test: failed")
    assert rest[0] == "    Traceback (most recent call last):"
    assert rest[-2:] == [
        "    ValueError: bad path /x",
        "    2026-01-01T00:00:00+0000 INFO app.audit: user.deleted user_id=u1\\r\\x1b[2K",
    ]
    assert all(line.startswith("    ") and line.isprintable() for line in rest)
    json_text = JsonFormatter().format(record)
    assert json_text.splitlines() == [json_text]
    assert json.loads(json_text)["exception"].endswith(FORGED + "\r\x1b[2K")
