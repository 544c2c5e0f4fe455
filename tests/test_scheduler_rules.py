"""Tests of the scheduler's pure rules: durations, birthday instants, reminder catch-up."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.errors import (
    DurationOutOfRange,
    DurationUnreadable,
    InvalidDate,
    UnknownTimezone,
    format_span,
)
from actors.scheduler import (
    Birthday,
    Lateness,
    late_note,
    lateness,
    next_due,
    parse_birthday,
    parse_duration,
    upcoming,
    write_duration,
    zone,
)
from actors.scheduler.calendar import day_bounds, occurrence

MINUTE, HOUR, DAY, WEEK = 60, 3_600, 86_400, 604_800
YEAR_DAYS = 365 * DAY


def tempban(text: str) -> int:
    return parse_duration(text, field="duration", minimum_seconds=MINUTE, maximum_seconds=YEAR_DAYS)


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# --- durations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90m", 90 * MINUTE),
        ("2h", 2 * HOUR),
        ("7d", 7 * DAY),
        ("1w2d", WEEK + 2 * DAY),
        ("1W 2D", WEEK + 2 * DAY),
        (" 1h 30m ", HOUR + 30 * MINUTE),
        ("1m", MINUTE),
        ("60s", MINUTE),
        ("365d", YEAR_DAYS),
        ("52w1d", YEAR_DAYS),
    ],
)
def test_durations_read_as_users_write_them(text: str, seconds: int) -> None:
    """The issue's examples and their spaced, upper-case and boundary forms all read."""
    assert tempban(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "  ", "90", "m", "2x", "1d1w", "1h1h", "1.5h", "-1h", "1h-", "9999999m", "1" * 40]
)
def test_unreadable_durations_are_refused_with_their_code(text: str) -> None:
    """No unit, an unknown unit, units out of order or repeated, and signs are refused."""
    with pytest.raises(DurationUnreadable) as caught:
        tempban(text)
    assert caught.value.code == "duration_unreadable"
    assert caught.value.field == "duration"


@pytest.mark.parametrize(("text", "seconds"), [("59s", 59), ("0m", 0), ("366d", 366 * DAY)])
def test_durations_outside_the_bounds_name_them(text: str, seconds: int) -> None:
    """Below one minute and above 365 days are refused, naming the value and the bounds."""
    with pytest.raises(DurationOutOfRange) as caught:
        tempban(text)
    assert caught.value.code == "duration_out_of_range"
    assert caught.value.seconds == seconds
    assert "1 min" in caught.value.message and "52 w 1 d" in caught.value.message


def test_a_recurrence_shorter_than_an_hour_is_out_of_range() -> None:
    """The bounds are the option's: ``every`` refuses 59 minutes and takes one hour."""
    with pytest.raises(DurationOutOfRange):
        parse_duration("59m", field="every", minimum_seconds=HOUR, maximum_seconds=YEAR_DAYS)
    assert parse_duration("1h", field="every", minimum_seconds=HOUR, maximum_seconds=YEAR_DAYS)


@given(st.integers(min_value=MINUTE, max_value=YEAR_DAYS))
def test_written_durations_read_back(seconds: int) -> None:
    """Every duration in range survives writing and reading back."""
    assert tempban(write_duration(seconds)) == seconds


@given(st.text(max_size=40))
def test_any_text_reads_or_is_refused_with_a_typed_error(text: str) -> None:
    """Arbitrary input never escapes as anything but the two typed errors."""
    try:
        seconds = tempban(text)
    except (DurationUnreadable, DurationOutOfRange):
        return
    assert MINUTE <= seconds <= YEAR_DAYS


@given(st.integers(min_value=0, max_value=10 * YEAR_DAYS))
def test_spans_are_written_largest_unit_first(seconds: int) -> None:
    """format_span's parts add up to the seconds it was given."""
    sizes = {"w": WEEK, "d": DAY, "h": HOUR, "min": MINUTE, "s": 1}
    words = format_span(seconds).split()
    total = sum(
        int(amount) * sizes[unit] for amount, unit in zip(words[::2], words[1::2], strict=True)
    )
    assert total == seconds


# --- birthdays ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "month", "day"), [("07-14", 7, 14), ("2/29", 2, 29), ("1-1", 1, 1)]
)
def test_birthdays_read_as_month_and_day(text: str, month: int, day: int) -> None:
    """MM-DD and M/D both read; 29 February is a valid birthday."""
    assert parse_birthday(text) == Birthday(month, day)


@pytest.mark.parametrize("text", ["02-30", "13-01", "00-10", "04-31", "0714", "July 14", "1-1-1"])
def test_impossible_birthdays_are_refused(text: str) -> None:
    """Days a month does not have, month 13 and other shapes are refused as invalid_date."""
    with pytest.raises(InvalidDate) as caught:
        parse_birthday(text)
    assert caught.value.code == "invalid_date"


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../etc/passwd", "Europe/" + "x" * 80])
def test_unknown_time_zones_are_refused(name: str) -> None:
    """A name that is no IANA zone (or tries a path) is refused as unknown_timezone."""
    with pytest.raises(UnknownTimezone) as caught:
        zone(name)
    assert caught.value.code == "unknown_timezone"


def test_the_role_period_is_midnight_to_midnight_in_the_members_zone() -> None:
    """A Tokyo member's 14 July starts at 15:00 UTC on 13 July and lasts 24 hours."""
    found = occurrence(
        Birthday(7, 14), 2026, member_tz=zone("Asia/Tokyo"), guild_tz=zone("UTC"), announce_hour=9
    )
    assert found.starts == at("2026-07-13T15:00:00+00:00")
    assert found.ends == at("2026-07-14T15:00:00+00:00")
    assert found.announce == at("2026-07-14T09:00:00+00:00")
    assert found.announce_until == at("2026-07-15T00:00:00+00:00")


def test_the_announcement_uses_the_guilds_zone_and_hour() -> None:
    """A guild in New York announcing at 18:00 posts at 22:00 UTC in summer."""
    found = occurrence(
        Birthday(7, 14),
        2026,
        member_tz=zone("UTC"),
        guild_tz=zone("America/New_York"),
        announce_hour=18,
    )
    assert found.announce == at("2026-07-14T22:00:00+00:00")


def test_29_february_is_celebrated_on_28_february_in_other_years() -> None:
    """A leap-day birthday falls on 28 February in 2027 and on 29 February in 2028."""
    leap = Birthday(2, 29)
    assert leap.in_year(2027) == date(2027, 2, 28)
    assert leap.in_year(2028) == date(2028, 2, 29)
    assert leap.in_year(2100) == date(2100, 2, 28)
    found = occurrence(leap, 2027, member_tz=zone("UTC"), guild_tz=zone("UTC"), announce_hour=0)
    assert found.starts == at("2027-02-28T00:00:00+00:00")


def test_a_birthday_on_a_daylight_saving_change_lasts_23_or_25_hours() -> None:
    """In Paris the spring change day has 23 hours and the autumn one 25."""
    paris = zone("Europe/Paris")
    spring = day_bounds(date(2026, 3, 29), paris)
    autumn = day_bounds(date(2026, 10, 25), paris)
    assert spring[1] - spring[0] == 23 * HOUR
    assert autumn[1] - autumn[0] == 25 * HOUR
    assert spring[0] == at("2026-03-28T23:00:00+00:00")


def test_a_day_whose_midnight_is_skipped_starts_at_its_first_instant() -> None:
    """Santiago skips 00:00 on its spring change: the day starts at 04:00 UTC (01:00 local)
    and still ends at the next midnight, so the role is held for 23 hours."""
    santiago = zone("America/Santiago")
    starts, ends = day_bounds(date(2026, 9, 6), santiago)
    assert datetime.fromtimestamp(starts, santiago).hour == 1
    assert ends - starts == 23 * HOUR


@given(
    st.integers(min_value=1, max_value=12),
    st.integers(min_value=1, max_value=31),
    st.integers(min_value=2000, max_value=2100),
    st.sampled_from(
        ["UTC", "Europe/Paris", "America/Santiago", "Pacific/Kiritimati", "Asia/Kolkata"]
    ),
)
def test_every_occurrence_is_one_local_day(month: int, day: int, year: int, name: str) -> None:
    """For any valid birthday, year and zone the role lasts 23 to 25 hours, starting on
    the celebrated date in the member's zone."""
    try:
        birthday = Birthday(month, day)
    except ValueError:
        return
    tz = zone(name)
    found = occurrence(birthday, year, member_tz=tz, guild_tz=tz, announce_hour=12)
    assert 23 * HOUR <= found.ends - found.starts <= 25 * HOUR
    assert datetime.fromtimestamp(found.starts, tz).date() == birthday.in_year(year)
    assert found.starts <= found.announce < found.announce_until == found.ends


def test_upcoming_starts_with_a_birthday_still_going_on_further_west() -> None:
    """On 1 January 02:00 UTC a 31 December birthday in Honolulu is still going on."""
    now = at("2027-01-01T02:00:00+00:00")
    honolulu = zone("Pacific/Honolulu")
    first = next(
        o
        for o in upcoming(
            Birthday(12, 31), now, member_tz=honolulu, guild_tz=honolulu, announce_hour=9
        )
        if o.ends > now
    )
    assert first.year == 2026 and first.starts <= now < first.ends


def test_upcoming_after_a_year_goes_on_from_the_next_one() -> None:
    """after_year skips straight to the year after it."""
    now = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    first = next(
        upcoming(
            Birthday(5, 5),
            now,
            member_tz=zone("UTC"),
            guild_tz=zone("UTC"),
            announce_hour=0,
            after_year=2030,
        )
    )
    assert first.year == 2031


# --- reminders ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("late", "expected"),
    [
        (0, Lateness.ON_TIME),
        (60, Lateness.ON_TIME),
        (61, Lateness.LATE),
        (7 * DAY - 1, Lateness.LATE),
        (7 * DAY, Lateness.DROPPED),
        (30 * DAY, Lateness.DROPPED),
    ],
)
def test_reminders_under_seven_days_late_are_delivered_older_ones_dropped(
    late: int, expected: Lateness
) -> None:
    """The late policy's three bands meet exactly at their bounds."""
    assert (
        lateness(1_000.0, 1_000.0 + late, on_time_seconds=60, late_seconds_max=7 * DAY) is expected
    )


def test_a_late_reminder_says_how_late() -> None:
    """The note names the delay in the units users read."""
    assert "3 h 12 min late" in late_note(0.0, 3 * HOUR + 12 * MINUTE)


@given(
    st.floats(min_value=0, max_value=1e9),
    st.integers(min_value=HOUR, max_value=YEAR_DAYS),
    st.floats(min_value=0, max_value=1e9),
)
def test_a_recurring_reminder_goes_on_from_the_first_occurrence_ahead(
    due: float, every: int, now: float
) -> None:
    """The next due time is after now, on the reminder's period, and less than one
    period ahead of now when the reminder was already due."""
    following = next_due(due, every, now)
    assert following > now
    if due <= now:
        # Exactly one period ahead when now falls on an occurrence; the float sum of
        # due and the periods may then exceed it by a rounding step (a few ulps of now).
        assert following - now <= every + 1e-6
        periods = (following - due) / every
        assert abs(periods - round(periods)) < 1e-6
    else:
        assert following == due
