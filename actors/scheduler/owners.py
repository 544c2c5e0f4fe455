"""Which record owns each scheduler timer, for the integrity check.

A scheduler timer is sound when its record still exists and names the timer's due time
(the handlers and commands write both in one transaction); a modlog post owns itself.
"""

from __future__ import annotations

from typing import Any

from actors import keys
from actors.scheduler.base import (
    BIRTHDAY_DUE_FIELD,
    MODLOG,
    REMINDER_KIND,
    UNBAN,
)
from actors.scheduler.records import BIRTHDAY, REMINDER, TEMPBAN
from actors.timer_records import TimerRecord
from storage import RecordDecodeError, Store


def timer_owner_problem(txn: Any, store: Store, timer: TimerRecord) -> str | None:
    """What is wrong with a scheduler timer's owner, or None when it is sound."""
    if timer.kind == MODLOG:
        return None
    try:
        parts = [int(part) for part in timer.target.split(":")]
    except ValueError:
        return f"{timer.kind} timer target {timer.target!r} is not guild:user"
    guild, user = parts[0], parts[1]
    try:
        if timer.kind == UNBAN:
            raw = txn.get(keys.member_key(guild, user), db=store.db("tempbans"))
            owned = raw is not None and TEMPBAN.decode(raw).until == timer.due
        elif timer.kind == REMINDER_KIND and len(parts) == 3:
            raw = txn.get(keys.reminder_key(guild, user, parts[2]), db=store.db("reminders"))
            owned = raw is not None and REMINDER.decode(raw).due == timer.due
        elif timer.kind in BIRTHDAY_DUE_FIELD:
            raw = txn.get(keys.member_key(guild, user), db=store.db("birthdays"))
            field = BIRTHDAY_DUE_FIELD[timer.kind]
            owned = raw is not None and getattr(BIRTHDAY.decode(raw), field) == timer.due
        else:
            return f"{timer.kind} timer target {timer.target!r} has the wrong shape"
    except RecordDecodeError as exc:
        return f"{timer.kind} timer for {timer.target}: its record cannot be read ({exc})"
    if owned:
        return None
    return f"{timer.kind} timer for {timer.target} due {timer.due}: no record names it"
