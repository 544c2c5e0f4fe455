"""Birthday arithmetic: which instants a birthday starts, ends and is announced at.

A birthday is a month and day. It lasts from 00:00 to 24:00 (the next day's 00:00) in the
member's time zone, so a day is 23 or 25 hours long across a daylight-saving change, and
the instants come from ``zoneinfo``: a local time that a change skips is read with the
offset before the change, as ``datetime.timestamp`` does (so 00:00 on a day that starts
at 01:00 is that day's first instant). 29 February is celebrated on 28 February in years
that have no 29 February. The announcement is posted at the guild's hour, in the guild's
time zone, on the birthday's date.

Everything here is a pure function of wall-clock seconds, for exhaustive tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from actors.errors import InvalidDate, UnknownTimezone
from limits import timezone_name_chars_max

_DATE = re.compile(r"^\s*([0-9]{1,2})\s*[-/]\s*([0-9]{1,2})\s*$")
# 2000 is a leap year, so every month and day a birthday can have is a date in it.
_LEAP_YEAR = 2000


@dataclass(frozen=True)
class Birthday:
    month: int
    day: int

    def __post_init__(self) -> None:
        date(_LEAP_YEAR, self.month, self.day)

    def text(self) -> str:
        return f"{self.month:02d}-{self.day:02d}"

    def in_year(self, year: int) -> date:
        """The date it is celebrated on in ``year`` (28 February for 29 February in a
        year without one)."""
        if self.month == 2 and self.day == 29 and not _is_leap(year):
            return date(year, 2, 28)
        return date(year, self.month, self.day)


@dataclass(frozen=True)
class Occurrence:
    """One year's birthday, in wall-clock seconds: the role is held from ``starts`` to
    ``ends``; the announcement is due at ``announce`` and still worth posting until
    ``announce_until`` (the end of that date in the guild's time zone)."""

    year: int
    on: date
    starts: float
    ends: float
    announce: float
    announce_until: float


def parse_birthday(text: str, *, field: str = "date") -> Birthday:
    """``MM-DD`` (or ``M/D``) as a ``Birthday``; ``InvalidDate`` otherwise."""
    match = _DATE.match(text) if len(text) <= 20 else None
    if match is None:
        raise InvalidDate(field, text)
    month, day = int(match.group(1)), int(match.group(2))
    try:
        return Birthday(month, day)
    except ValueError:
        raise InvalidDate(field, text) from None


def zone(name: str, *, field: str = "timezone") -> ZoneInfo:
    """The IANA time zone ``name``; ``UnknownTimezone`` when there is none by that name."""
    cleaned = name.strip()
    if not cleaned or len(cleaned) > timezone_name_chars_max:
        raise UnknownTimezone(field, name)
    try:
        return _zone(cleaned)
    except (ZoneInfoNotFoundError, ValueError):
        raise UnknownTimezone(field, name) from None


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    # ZoneInfo keeps its own cache too, but a failed look-up is not cached by it; this
    # one caches only successes (exceptions are never cached by lru_cache).
    return ZoneInfo(name)


def day_bounds(on: date, tz: ZoneInfo) -> tuple[float, float]:
    """Wall-clock seconds of 00:00 and 24:00 of ``on`` in ``tz``."""
    start = datetime.combine(on, time(0), tzinfo=tz).timestamp()
    end = datetime.combine(on + timedelta(days=1), time(0), tzinfo=tz).timestamp()
    assert start < end, (on, tz)
    return start, end


def occurrence(
    birthday: Birthday,
    year: int,
    *,
    member_tz: ZoneInfo,
    guild_tz: ZoneInfo,
    announce_hour: int,
) -> Occurrence:
    assert 0 <= announce_hour <= 23, announce_hour
    on = birthday.in_year(year)
    starts, ends = day_bounds(on, member_tz)
    announce = datetime.combine(on, time(announce_hour), tzinfo=guild_tz).timestamp()
    _, announce_until = day_bounds(on, guild_tz)
    return Occurrence(year, on, starts, ends, announce, announce_until)


def upcoming(
    birthday: Birthday,
    now: float,
    *,
    member_tz: ZoneInfo,
    guild_tz: ZoneInfo,
    announce_hour: int,
    after_year: int | None = None,
) -> Iterator[Occurrence]:
    """Occurrences in order, from the year after ``after_year``, or else from the one
    before ``now``'s year in the member's zone (whose day may still be going on in a zone
    further west); callers take the first one still open for what they schedule."""
    year = local_date(now, member_tz).year - 1 if after_year is None else after_year + 1
    while True:
        yield occurrence(
            birthday, year, member_tz=member_tz, guild_tz=guild_tz, announce_hour=announce_hour
        )
        year += 1


def local_date(now: float, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(now, tz).date()


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
