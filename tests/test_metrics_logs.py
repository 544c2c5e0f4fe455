"""Structured log lines: one per event, logfmt or JSON, to stderr and a file."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from metrics.logs import configure_logging, log_event

_LOGFMT_PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def _logfmt(line: str) -> dict[str, str]:
    pairs = {}
    for key, value in _LOGFMT_PAIR.findall(line):
        pairs[key] = json.loads(value) if value.startswith('"') else value
    return pairs


def test_an_event_is_one_logfmt_line_on_stderr_and_in_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fields with spaces, quotes and newlines stay on one line and read back intact."""
    log_file = tmp_path / "croupier.log"
    configure_logging("info", str(log_file), json=False)
    logger = logging.getLogger("croupier.test")

    log_event(logger, "game_settled", kind="blackjack", stake=50, note='a "big"\nwin')
    log_event(logger, "too_quiet", level=logging.DEBUG)

    stderr_lines = capsys.readouterr().err.splitlines()
    assert stderr_lines == log_file.read_text(encoding="utf-8").splitlines()
    assert len(stderr_lines) == 1
    fields = _logfmt(stderr_lines[0])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", fields.pop("time"))
    assert fields == {
        "level": "info",
        "logger": "croupier.test",
        "event": "game_settled",
        "kind": "blackjack",
        "stake": "50",
        "note": 'a "big"\nwin',
    }


def test_json_lines_carry_typed_fields_and_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In JSON mode each line is an object; an exception's traceback is one field of it."""
    configure_logging("debug", None, json=True)
    logger = logging.getLogger("croupier.test")

    try:
        raise ValueError("boom")
    except ValueError:
        log_event(logger, "handler_failed", level=logging.ERROR, exc_info=True, retry=False)

    (line,) = capsys.readouterr().err.splitlines()
    document = json.loads(line)
    assert document["level"] == "error"
    assert document["event"] == "handler_failed"
    assert document["retry"] is False
    assert "ValueError: boom" in document["exc"]


def test_plain_library_records_are_structured_too(capsys: pytest.CaptureFixture[str]) -> None:
    """A record logged without log_event gets its message as the event."""
    configure_logging("warning", None, json=False)

    logging.getLogger("some.library").warning("disk %s is slow", "sda")

    fields = _logfmt(capsys.readouterr().err)
    assert (fields["logger"], fields["event"]) == ("some.library", "disk sda is slow")


def test_configuring_twice_replaces_rather_than_duplicates(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A second configure_logging call leaves one handler per destination."""
    configure_logging("info", None, json=False)
    configure_logging("info", None, json=True)

    log_event(logging.getLogger("croupier.test"), "once")

    (line,) = capsys.readouterr().err.splitlines()
    assert json.loads(line)["event"] == "once"


def test_an_unknown_level_is_refused_by_name() -> None:
    """A typo in the configured level stops start-up with the level named."""
    with pytest.raises(ValueError, match="'verbose'"):
        configure_logging("verbose", None, json=False)


def test_a_field_may_not_hide_a_standard_key() -> None:
    """Fields named like the standard keys are a bug in the caller."""
    with pytest.raises(AssertionError, match="logger"):
        log_event(logging.getLogger("croupier.test"), "clash", logger="x")
