"""Reminders: a member's numbered reminders, delivered in the channel or by DM (falling
back to the channel), late with a note under ``reminder_late_seconds_max`` and dropped
past it; a recurring one goes on from its first occurrence still ahead."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from actors import keys
from actors.discord_port import Done, Forbidden, Gone, Retry
from actors.errors import NotFound, TooManyReminders
from actors.scheduler.base import REMINDER_KIND, SchedulerBase, log, message_nonce, timer_id
from actors.scheduler.policy import Lateness, late_note, lateness, next_due
from actors.scheduler.records import REMINDER, WHERE_DM, ReminderRecord
from actors.timer_records import TimerRecord, delete_timer, put_timer, settled
from metrics import log_event
from storage.codec import packb, unpackb


class ReminderMixin(SchedulerBase):
    """Reminders of every member."""

    def reminders(self, guild: int, user: int) -> list[ReminderRecord]:
        """A member's reminders, soonest first."""
        prefix = keys.member_key(guild, user)
        found = [REMINDER.decode(raw) for raw in self._prefix_values(prefix, "reminders")]
        found.sort(key=lambda record: record.due)
        return found

    async def remind(
        self,
        guild: int,
        user: int,
        *,
        channel: int,
        where: str,
        text: str,
        seconds: int,
        every: int,
        request: int,
    ) -> ReminderRecord:
        """Keep a reminder and its timer; a redelivered request returns the first one."""
        now, store = self.now(), self.store
        prefix = keys.member_key(guild, user)
        count_max = self.limits.reminders_per_member_max

        def write(txn: Any) -> ReminderRecord:
            cursor = txn.cursor(db=store.db("reminders"))
            found, count = cursor.set_range(prefix), 0
            while found and bytes(cursor.key()).startswith(prefix):
                existing = REMINDER.decode(cursor.value())
                if request and existing.request == request:
                    return existing
                count += 1
                found = cursor.next()
            if count >= count_max:
                raise TooManyReminders(count, count_max)
            raw = txn.get(prefix, db=store.db("reminder_numbers"))
            number = (0 if raw is None else int(unpackb(raw))) + 1
            txn.put(prefix, packb(number), db=store.db("reminder_numbers"))
            record = ReminderRecord(
                guild, user, number, channel, where, text, now + seconds, every, now, request
            )
            txn.put(
                keys.reminder_key(guild, user, number),
                REMINDER.encode(record),
                db=store.db("reminders"),
            )
            self._put_reminder_timer(txn, record)
            return record

        record = await store.write(write)
        self.timers.kick()
        return record

    def _put_reminder_timer(self, txn: Any, record: ReminderRecord) -> None:
        target = f"{record.guild}:{record.user}:{record.number}"
        timer = TimerRecord(REMINDER_KIND, target, record.due, guild_id=record.guild)
        put_timer(txn, self.store, f"{REMINDER_KIND}:{target}", timer)

    async def cancel_reminder(self, guild: int, user: int, number: int) -> ReminderRecord:
        """Cancel one of the member's own reminders; ``NotFound`` if they have no such."""
        store, key = self.store, keys.reminder_key(guild, user, number)

        def write(txn: Any) -> ReminderRecord | None:
            raw = txn.get(key, db=store.db("reminders"))
            if raw is None:
                return None
            record = REMINDER.decode(raw)
            txn.delete(key, db=store.db("reminders"))
            delete_timer(txn, store, f"{REMINDER_KIND}:{guild}:{user}:{number}", record.due)
            return record

        cancelled = await store.write(write)
        if cancelled is None:
            raise NotFound("reminder", number)
        return cancelled

    async def _on_reminder(self, timer: TimerRecord) -> None:
        guild, user, number = (int(part) for part in timer.target.split(":"))
        key = keys.reminder_key(guild, user, number)
        with self.store.read() as txn:
            raw = txn.get(key, db=self.store.db("reminders"))
        record = None if raw is None else REMINDER.decode(raw)
        if record is None or record.due != timer.due:
            await self._remove_timer(timer)
            return
        now = self.now()
        late = lateness(
            record.due,
            now,
            on_time_seconds=self.limits.reminder_on_time_seconds,
            late_seconds_max=self.limits.reminder_late_seconds_max,
        )
        ended = False
        if late is Lateness.DROPPED:
            self._dropped.labels(REMINDER_KIND).inc()
            log_event(
                log,
                "scheduler_dropped",
                level=logging.WARNING,
                kind=REMINDER_KIND,
                guild=guild,
                user=user,
                late_seconds=int(now - record.due),
            )
        else:
            note = f"\n{late_note(record.due, now)}" if late is Lateness.LATE else ""
            ended = not await self._deliver(record, timer, f"⏰ {record.text}{note}")
        await self._after_reminder(record, timer, now, ended)

    async def _deliver(self, record: ReminderRecord, timer: TimerRecord, text: str) -> bool:
        """Send the reminder; False when its channel is gone for good (deleted, or the
        bot may no longer post there), which ends the reminder. A DM that cannot be
        delivered falls back to the channel with a mention."""
        nonce = message_nonce(timer.kind, timer.target, timer.due)
        port = self._port()
        if record.where == WHERE_DM:
            sent = await port.send_dm(record.user, text, nonce=nonce)
            if isinstance(sent, Retry):
                settled(sent)
            if isinstance(sent, Done):
                return True
            # Any refusal of a DM (closed DMs, or a 403 opening the DM channel) is about
            # the member, not a guild permission: the channel with a mention is the way.
        mention = f"<@{record.user}> {text}"
        result = await port.send_message(
            record.channel, mention, nonce=nonce, mention_user_ids=(record.user,)
        )
        if isinstance(result, Forbidden | Gone):
            log_event(
                log,
                "reminder_undeliverable",
                level=logging.WARNING,
                guild=record.guild,
                user=record.user,
                channel=record.channel,
                code=result.code,
            )
            return False
        settled(result)
        return True

    async def _after_reminder(
        self, record: ReminderRecord, timer: TimerRecord, now: float, ended: bool
    ) -> None:
        """Remove the fired timer; a recurring reminder gets its next one, others go."""
        store = self.store
        key = keys.reminder_key(record.guild, record.user, record.number)
        following = next_due(record.due, record.every, now) if record.every and not ended else 0.0

        def write(txn: Any) -> None:
            delete_timer(txn, store, timer_id(timer), timer.due)
            raw = txn.get(key, db=store.db("reminders"))
            if raw is None or REMINDER.decode(raw).due != timer.due:
                return
            if following:
                updated = replace(record, due=following)
                txn.put(key, REMINDER.encode(updated), db=store.db("reminders"))
                self._put_reminder_timer(txn, updated)
            else:
                txn.delete(key, db=store.db("reminders"))

        await store.write(write)
        self.timers.kick()
