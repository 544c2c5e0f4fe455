"""The scheduler: tempbans, birthday roles and reminders on the durable timers.

``Scheduler`` keeps the records and handles their timers (``service``), from its parts
``tempbans``, ``birthdays`` and ``reminders`` over what they share (``base``: timer kinds,
configuration, the modlog); the records are in ``records``. The pure rules (durations as
users write them, birthday instants across time zones, the reminders' catch-up policy)
live in ``durations``, ``calendar`` and ``policy``.
"""

from actors.scheduler.base import TIMER_KINDS
from actors.scheduler.birthdays import BirthdayView
from actors.scheduler.calendar import Birthday, Occurrence, parse_birthday, upcoming, zone
from actors.scheduler.durations import parse_duration, write_duration
from actors.scheduler.policy import Lateness, late_note, lateness, next_due
from actors.scheduler.service import Scheduler

__all__ = [
    "TIMER_KINDS",
    "Birthday",
    "BirthdayView",
    "Lateness",
    "Occurrence",
    "Scheduler",
    "late_note",
    "lateness",
    "next_due",
    "parse_birthday",
    "parse_duration",
    "upcoming",
    "write_duration",
    "zone",
]
