"""The scheduler: tempbans, birthday roles and reminders on the durable timers.

The pure rules (durations as users write them, birthday instants across time zones, the
reminders' catch-up policy) live in ``durations``, ``calendar`` and ``policy``.
"""

from actors.scheduler.calendar import Birthday, Occurrence, parse_birthday, upcoming, zone
from actors.scheduler.durations import parse_duration, write_duration
from actors.scheduler.policy import Lateness, late_note, lateness, next_due

__all__ = [
    "Birthday",
    "Lateness",
    "Occurrence",
    "late_note",
    "lateness",
    "next_due",
    "parse_birthday",
    "parse_duration",
    "upcoming",
    "write_duration",
    "zone",
]
