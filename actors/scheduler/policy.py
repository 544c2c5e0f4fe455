"""The catch-up rules of reminders, as pure functions of wall-clock seconds.

A reminder that fires within ``on_time_seconds`` of its due time is delivered as it is; a
later one (the server was down) is delivered with a note of how late it is, up to
``late_seconds_max``; an older one is dropped, and the caller logs and counts it. A
recurring reminder fires once for all the occurrences it missed, then goes on from the
first one still ahead.
"""

from __future__ import annotations

import enum
import math

from actors.errors import format_span


class Lateness(enum.Enum):
    ON_TIME = "on_time"
    LATE = "late"
    DROPPED = "dropped"


def lateness(
    due: float, now: float, *, on_time_seconds: float, late_seconds_max: float
) -> Lateness:
    assert 0 <= on_time_seconds < late_seconds_max, (on_time_seconds, late_seconds_max)
    late = now - due
    if late <= on_time_seconds:
        return Lateness.ON_TIME
    if late < late_seconds_max:
        return Lateness.LATE
    return Lateness.DROPPED


def late_note(due: float, now: float) -> str:
    """The line a late reminder carries."""
    late = max(1, int(now - due))
    return f"(this reminder is {format_span(late)} late: Croupier was offline when it was due)"


def next_due(due: float, every_seconds: int, now: float) -> float:
    """The first occurrence of a reminder recurring every ``every_seconds`` from ``due``
    that is after ``now``."""
    assert every_seconds > 0, every_seconds
    if due > now:
        return due
    missed = math.floor((now - due) / every_seconds) + 1
    following = due + missed * every_seconds
    assert following > now, (due, every_seconds, now)
    return following
