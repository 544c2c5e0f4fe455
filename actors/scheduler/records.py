"""The scheduler's records and their versioned codecs.

Each record knows the due times of its pending timers, because a timer's key is its due
time and its id: the record is how its timers are found again to replace or cancel them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from storage.codec import RecordCodec

WHERE_HERE = "here"
WHERE_DM = "dm"


@dataclass
class TempbanRecord:
    """A ban that is lifted at ``until`` (wall-clock seconds) by the ``unban`` timer."""

    guild: int
    user: int
    until: float
    reason: str
    moderator: int
    created_at: float
    # The interaction that made it: a redelivery of that interaction finds it, and a
    # refused ban removes only the record it wrote.
    request: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class BirthdayRecord:
    guild: int
    user: int
    month: int
    day: int
    # The member's IANA zone, or "" for the guild's zone.
    tz: str = ""
    grant_due: float = 0.0
    removal_due: float = 0.0
    announce_due: float = 0.0
    # The role granted and not yet removed (0 when none), so a removal after a change of
    # the guild's role still takes the role that was given.
    role_held: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReminderRecord:
    guild: int
    user: int
    number: int
    channel: int
    where: str
    text: str
    due: float
    # Seconds between occurrences of a recurring reminder; 0 for a one-off.
    every: int
    created_at: float
    request: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SchedulerConfig:
    """A guild's scheduler settings; 0 means not set."""

    birthday_role: int = 0
    birthday_channel: int = 0
    birthday_hour: int = 9
    timezone: str = "UTC"
    modlog_channel: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


TEMPBAN = RecordCodec(TempbanRecord, kind="tempban", version=1)
BIRTHDAY = RecordCodec(BirthdayRecord, kind="birthday", version=1)
REMINDER = RecordCodec(ReminderRecord, kind="reminder", version=1)
SCHEDULER_CONFIG = RecordCodec(SchedulerConfig, kind="scheduler_config", version=1)
