"""Structured logs: one line per event, to stderr and optionally to a file.

A line carries the time (UTC, milliseconds), the level, the logger name, the event name
and the event's fields, either as ``key=value`` pairs (logfmt, for people) or as one JSON
object (for log shippers). Records from other libraries, which know nothing of events,
are written the same way with their message as the event.
"""

from __future__ import annotations

import json as json_module
import logging
import sys
from datetime import UTC, datetime
from typing import Any

# Keys every line carries; an event field may not reuse one, or it would hide it.
_RESERVED_KEYS = frozenset({"time", "level", "logger", "event", "exc"})
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def log_event(
    logger: logging.Logger,
    event: str,
    /,
    *,
    level: int = logging.INFO,
    exc_info: bool = False,
    **fields: object,
) -> None:
    """Log ``event`` with ``fields`` as one structured line.

    ``level`` and ``exc_info`` are passed to logging, not written as fields; with
    ``exc_info`` the current exception's traceback becomes the ``exc`` field.
    """
    assert event, "an event needs a name"
    clashes = _RESERVED_KEYS.intersection(fields)
    assert not clashes, f"event fields may not be named {sorted(clashes)}"
    logger.log(level, event, exc_info=exc_info, extra={"event": event, "fields": fields})


class StructuredFormatter(logging.Formatter):
    """Formats a record as one line of logfmt or JSON."""

    def __init__(self, *, json: bool) -> None:
        super().__init__()
        self._json = json

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _utc_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        if self._json:
            return json_module.dumps(line, default=str, ensure_ascii=False)
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in line.items())


def configure_logging(level: str = "info", file: str | None = None, json: bool = False) -> None:
    """Send every log record, as structured lines, to stderr and to ``file`` if given.

    Calling it again replaces the handlers it installed before, so a reload of the
    configuration does not duplicate lines. ``level`` is a name such as ``"info"``.
    """
    try:
        threshold = _LEVELS[level.lower()]
    except KeyError:
        names = ", ".join(_LEVELS)
        raise ValueError(f"log level {level!r} is not one of {names}") from None
    formatter = StructuredFormatter(json=json)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if file is not None:
        handlers.append(logging.FileHandler(file, encoding="utf-8"))
    root = logging.getLogger()
    for old in root.handlers[:]:
        if isinstance(old.formatter, StructuredFormatter):
            root.removeHandler(old)
            old.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(threshold)


def _utc_time(created: float) -> str:
    stamp = datetime.fromtimestamp(created, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _logfmt_value(value: object) -> str:
    # Bare words stay bare; anything that could split the line or the pair (spaces,
    # quotes, '=', newlines in a traceback) is written as a JSON string, which escapes it.
    text = value if isinstance(value, str) else json_module.dumps(value, default=str)
    if text and all(c.isprintable() and c not in ' "=' for c in text):
        return text
    return json_module.dumps(text, ensure_ascii=False)
