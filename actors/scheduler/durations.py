"""Durations as users write them: ``90m``, ``2h``, ``7d``, ``1w2d``.

A duration is one or more amounts, each followed by its unit, largest unit first and each
unit at most once (``1w2d``, ``1h 30m``); spaces between the parts are allowed and case is
ignored. The result is whole seconds, checked against the bounds of the option it came in.
"""

from __future__ import annotations

import re

from actors.errors import DurationOutOfRange, DurationUnreadable
from limits import duration_text_chars_max

UNIT_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_UNITS_ORDER = "wdhms"
# Six digits per amount cover every bound in use (a year is 525,600 minutes).
_PART = re.compile(r"\s*([0-9]{1,6})\s*([a-z])\s*")


def parse_duration(text: str, *, field: str, minimum_seconds: int, maximum_seconds: int) -> int:
    """The seconds ``text`` names; ``DurationUnreadable`` when it is not a duration,
    ``DurationOutOfRange`` when it is outside ``minimum_seconds..maximum_seconds``."""
    assert 0 < minimum_seconds <= maximum_seconds, (minimum_seconds, maximum_seconds)
    if len(text) > duration_text_chars_max:
        raise DurationUnreadable(field, text)
    lowered = text.lower()
    position, total, last_unit = 0, 0, -1
    while position < len(lowered):
        match = _PART.match(lowered, position)
        if match is None or match.group(2) not in UNIT_SECONDS:
            raise DurationUnreadable(field, text)
        order = _UNITS_ORDER.index(match.group(2))
        if order <= last_unit:
            raise DurationUnreadable(field, text)
        last_unit = order
        total += int(match.group(1)) * UNIT_SECONDS[match.group(2)]
        position = match.end()
    if last_unit < 0:
        raise DurationUnreadable(field, text)
    if not minimum_seconds <= total <= maximum_seconds:
        raise DurationOutOfRange(field, total, minimum_seconds, maximum_seconds)
    return total


def write_duration(seconds: int) -> str:
    """The shortest text ``parse_duration`` reads back as ``seconds`` (``1w2d``)."""
    assert seconds > 0, seconds
    parts = []
    for unit in _UNITS_ORDER:
        amount, seconds = divmod(seconds, UNIT_SECONDS[unit])
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)
