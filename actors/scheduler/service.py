"""The scheduler's domain: tempbans, birthdays and reminders on the durable timers.

Every record is written with its timers in one transaction of the store's group-commit
writer, before anything is asked of Discord. Each timer kind has a handler that reads the
record, acts on Discord through the ``DiscordPort``, and only after Discord confirmed (or
answered for good that there is nothing to do) removes its timer in its own write, with
the kind's successor when there is one. A retry or a missing permission is raised for the
timer service (``actors.timers.settled``), which backs off; the timer stays.

Catch-up policies, for timers that fell due while the server was down:

- an unban fires late, whenever it can;
- a birthday role is granted only while it is still the birthday in the member's zone,
  and is always removed; an announcement is posted only while it is still the birthday's
  date in the guild's zone; what is too late is dropped, logged and counted;
- a reminder under ``reminder_late_seconds_max`` late is delivered with a note of how
  late, an older one is dropped, logged and counted; a recurring one goes on.

A timer whose record is gone or no longer names it (replaced by a newer tempban, a moved
birthday, a cancelled reminder) is stale: its handler removes it and does nothing else.
"""

from __future__ import annotations

from collections.abc import Callable

from actors.discord_port import DiscordPort
from actors.scheduler.base import (
    BIRTHDAY_ANNOUNCE,
    BIRTHDAY_GRANT,
    BIRTHDAY_REMOVAL,
    MODLOG,
    REMINDER_KIND,
    UNBAN,
)
from actors.scheduler.birthdays import BirthdayMixin
from actors.scheduler.reminders import ReminderMixin
from actors.scheduler.tempbans import TempbanMixin
from actors.timers import TimerService
from storage import Store


class Scheduler(TempbanMixin, BirthdayMixin, ReminderMixin):
    """Tempbans, birthdays and reminders of every guild, over one store and timer service.

    ``discord`` is None where the transport has no Discord (the console): then the timer
    handlers defer as ``Busy`` (nothing is counted against the timer, so a console run
    over a server's data dir parks nothing) and the commands refuse with
    ``discord_required``."""

    def __init__(
        self,
        store: Store,
        timers: TimerService,
        *,
        wall_clock: Callable[[], float],
        discord: DiscordPort | None,
    ) -> None:
        super().__init__(store, timers, wall_clock=wall_clock, discord=discord)
        handlers = {
            UNBAN: self._on_unban,
            BIRTHDAY_GRANT: self._on_birthday,
            BIRTHDAY_REMOVAL: self._on_birthday,
            BIRTHDAY_ANNOUNCE: self._on_birthday,
            REMINDER_KIND: self._on_reminder,
            MODLOG: self._on_modlog,
        }
        for kind, handler in handlers.items():
            timers.register(kind, handler, discord=True)
