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

import base64
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

from actors import keys
from actors.discord_port import DiscordPort, DiscordResult, Done, Forbidden, Gone, Retry
from actors.errors import (
    BanRefused,
    Busy,
    NotBanned,
    NotFound,
    RoleNotRemovable,
    TooManyReminders,
    UnbanRefused,
    format_span,
)
from actors.scheduler.calendar import Birthday, Occurrence, upcoming, zone
from actors.scheduler.policy import Lateness, late_note, lateness, next_due
from actors.scheduler.records import (
    BIRTHDAY,
    REMINDER,
    SCHEDULER_CONFIG,
    TEMPBAN,
    WHERE_DM,
    BirthdayRecord,
    ReminderRecord,
    SchedulerConfig,
    TempbanRecord,
)
from actors.timers import TimerRecord, TimerService, delete_timer, put_timer, settled
from metrics import log_event
from storage import Store
from storage.codec import packb, unpackb

log = logging.getLogger("croupier.scheduler")

UNBAN = "unban"
BIRTHDAY_GRANT = "birthday_grant"
BIRTHDAY_REMOVAL = "birthday_removal"
BIRTHDAY_ANNOUNCE = "birthday_announce"
REMINDER_KIND = "reminder"
MODLOG = "modlog"
TIMER_KINDS = (UNBAN, BIRTHDAY_GRANT, BIRTHDAY_REMOVAL, BIRTHDAY_ANNOUNCE, REMINDER_KIND, MODLOG)
BIRTHDAY_DUE_FIELD = {
    BIRTHDAY_GRANT: "grant_due",
    BIRTHDAY_REMOVAL: "removal_due",
    BIRTHDAY_ANNOUNCE: "announce_due",
}


@dataclass(frozen=True)
class BirthdayView:
    record: BirthdayRecord
    next: Occurrence


def timer_id(timer: TimerRecord) -> str:
    return f"{timer.kind}:{timer.target}"


def message_nonce(kind: str, target: str, due: float) -> str:
    """A message's nonce, the same for every firing of one timer (so a retried send posts
    once) and different for every timer: 24 characters, under Discord's 25."""
    digest = hashlib.sha256(f"{kind}:{target}:{int(due * 1000)}".encode()).digest()
    return base64.b32encode(digest[:15]).decode()


def _member_target(target: str) -> tuple[int, int]:
    guild, user = target.split(":")[:2]
    return int(guild), int(user)


class Scheduler:
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
        self.store = store
        self.timers = timers
        self.limits = store.limits
        self.now = wall_clock
        self.discord = discord
        self._dropped = store.metrics.scheduler_dropped
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

    # --- reads ----------------------------------------------------------------------------

    def config(self, guild: int) -> SchedulerConfig:
        with self.store.read() as txn:
            raw = txn.get(keys.guild_key(guild), db=self.store.db("scheduler_config"))
        return SchedulerConfig() if raw is None else SCHEDULER_CONFIG.decode(raw)

    def tempban_of(self, guild: int, user: int) -> TempbanRecord | None:
        with self.store.read() as txn:
            raw = txn.get(keys.member_key(guild, user), db=self.store.db("tempbans"))
        return None if raw is None else TEMPBAN.decode(raw)

    def tempbans(self, guild: int) -> list[TempbanRecord]:
        """The guild's tempbans, soonest expiry first (at most the list limit)."""
        found = [TEMPBAN.decode(raw) for raw in self._guild_values(guild, "tempbans")]
        found.sort(key=lambda record: record.until)
        return found[: self.limits.scheduler_list_entries_max]

    def birthday_of(self, guild: int, user: int) -> BirthdayRecord | None:
        with self.store.read() as txn:
            raw = txn.get(keys.member_key(guild, user), db=self.store.db("birthdays"))
        return None if raw is None else BIRTHDAY.decode(raw)

    def birthdays(self, guild: int) -> list[BirthdayView]:
        """The guild's next birthdays, soonest first (at most the list limit)."""
        config, now = self.config(guild), self.now()
        views = []
        for raw in self._guild_values(guild, "birthdays"):
            record = BIRTHDAY.decode(raw)
            coming = self._first(record, config, now, lambda o: o.ends > now)
            views.append(BirthdayView(record, coming))
        views.sort(key=lambda view: view.next.starts)
        return views[: self.limits.scheduler_list_entries_max]

    def reminders(self, guild: int, user: int) -> list[ReminderRecord]:
        """A member's reminders, soonest first."""
        prefix = keys.member_key(guild, user)
        found = [REMINDER.decode(raw) for raw in self._prefix_values(prefix, "reminders")]
        found.sort(key=lambda record: record.due)
        return found

    def _guild_values(self, guild: int, db_name: str) -> list[bytes]:
        return self._prefix_values(keys.guild_key(guild), db_name)

    def _prefix_values(self, prefix: bytes, db_name: str) -> list[bytes]:
        values: list[bytes] = []
        with self.store.read() as txn:
            cursor = txn.cursor(db=self.store.db(db_name))
            found = cursor.set_range(prefix)
            while found and bytes(cursor.key()).startswith(prefix):
                values.append(bytes(cursor.value()))
                found = cursor.next()
        return values

    # --- configuration --------------------------------------------------------------------

    async def set_modlog(self, guild: int, channel: int) -> SchedulerConfig:
        return await self._update_config(guild, modlog_channel=channel)

    async def configure_birthdays(
        self, guild: int, *, role: int, channel: int, hour: int | None, timezone: str | None
    ) -> SchedulerConfig:
        """Set the guild's birthday role, channel, hour and zone, and move every pending
        birthday timer of the guild to the instants the new settings give."""
        assert hour is None or 0 <= hour <= 23, hour
        changes: dict[str, Any] = {"birthday_role": role, "birthday_channel": channel}
        if hour is not None:
            changes["birthday_hour"] = hour
        if timezone is not None:
            changes["timezone"] = zone(timezone).key
        config = await self._update_config(guild, **changes)
        await self._reschedule_guild(guild)
        return config

    async def _update_config(self, guild: int, **changes: Any) -> SchedulerConfig:
        store, key = self.store, keys.guild_key(guild)

        def write(txn: Any) -> SchedulerConfig:
            raw = txn.get(key, db=store.db("scheduler_config"))
            current = SchedulerConfig() if raw is None else SCHEDULER_CONFIG.decode(raw)
            updated = replace(current, **changes)
            txn.put(key, SCHEDULER_CONFIG.encode(updated), db=store.db("scheduler_config"))
            return updated

        return await store.write(write)

    async def _reschedule_guild(self, guild: int) -> None:
        """Reschedule the guild's birthdays in writes of a bounded size."""
        store, start = self.store, keys.guild_key(guild)
        prefix = start
        while True:

            def write(txn: Any, start: bytes = start) -> bytes | None:
                config, now = self._config_in(txn, guild), self.now()
                cursor = txn.cursor(db=store.db("birthdays"))
                found, done = cursor.set_range(start), 0
                while found and bytes(cursor.key()).startswith(prefix):
                    if done >= self.limits.birthdays_per_write_max:
                        return bytes(cursor.key())
                    record = BIRTHDAY.decode(cursor.value())
                    self._delete_birthday_timers(txn, record)
                    self._schedule_birthday(txn, record, config, now)
                    done += 1
                    found = cursor.next()
                return None

            following = await store.write(write)
            self.timers.kick()
            if following is None:
                return
            start = following

    def _config_in(self, txn: Any, guild: int) -> SchedulerConfig:
        raw = txn.get(keys.guild_key(guild), db=self.store.db("scheduler_config"))
        return SchedulerConfig() if raw is None else SCHEDULER_CONFIG.decode(raw)

    # --- tempbans -------------------------------------------------------------------------

    def _port(self) -> DiscordPort:
        if self.discord is None:
            # No Discord in this process: the timer waits for a process that has one.
            raise Busy()
        return self.discord

    async def tempban(
        self,
        guild: int,
        user: int,
        *,
        moderator: int,
        seconds: int,
        reason: str,
        delete_message_seconds: int,
        request: int,
    ) -> TempbanRecord:
        """Record the tempban and its unban timer, then ban; if Discord refuses, put back
        what was there before and raise ``BanRefused``. A tempban of a member who has one
        replaces it (and its timer)."""
        now, store = self.now(), self.store
        key = keys.member_key(guild, user)
        record = TempbanRecord(guild, user, now + seconds, reason, moderator, now, request)

        def write(txn: Any) -> TempbanRecord | None:
            raw = txn.get(key, db=store.db("tempbans"))
            old = None if raw is None else TEMPBAN.decode(raw)
            if old is not None:
                delete_timer(txn, store, f"{UNBAN}:{guild}:{user}", old.until)
            txn.put(key, TEMPBAN.encode(record), db=store.db("tempbans"))
            put_timer(txn, store, f"{UNBAN}:{guild}:{user}", self._unban_timer(record))
            return old

        old = await store.write(write)
        self.timers.kick()
        audit = f"{reason} (tempban by {moderator} for {format_span(seconds)})"
        result = await self._acting_port().ban(
            guild, user, reason=audit, delete_message_seconds=delete_message_seconds
        )
        if not isinstance(result, Done):
            await self._undo_tempban(record, old)
            raise BanRefused(user, _why(result))
        text = (
            f"🔨 <@{user}> was banned by <@{moderator}> for {format_span(seconds)} "
            f"(until <t:{int(record.until)}:f>): {reason}"
        )
        await self._modlog(guild, user, "tempban", text)
        return record

    def _acting_port(self) -> DiscordPort:
        """The port for a command's own Discord action (commands refuse with
        ``discord_required`` before calling where there is none)."""
        assert self.discord is not None, "commands check for Discord before acting"
        return self.discord

    @staticmethod
    def _unban_timer(record: TempbanRecord) -> TimerRecord:
        return TimerRecord(
            UNBAN, f"{record.guild}:{record.user}", record.until, guild_id=record.guild
        )

    async def _undo_tempban(self, record: TempbanRecord, old: TempbanRecord | None) -> None:
        store, key = self.store, keys.member_key(record.guild, record.user)
        timer = f"{UNBAN}:{record.guild}:{record.user}"

        def write(txn: Any) -> None:
            raw = txn.get(key, db=store.db("tempbans"))
            if raw is None or TEMPBAN.decode(raw).request != record.request:
                return
            delete_timer(txn, store, timer, record.until)
            if old is None:
                txn.delete(key, db=store.db("tempbans"))
            else:
                txn.put(key, TEMPBAN.encode(old), db=store.db("tempbans"))
                put_timer(txn, store, timer, self._unban_timer(old))

        await store.write(write)
        self.timers.kick()

    async def unban(self, guild: int, user: int, *, moderator: int, reason: str) -> bool:
        """Lift a ban now; True if it cancelled a pending tempban. The record goes first,
        so the gateway's ban-removed event that follows finds nothing to cancel."""
        removed = await self._drop_tempban(guild, user)
        audit = f"{reason} (unban by {moderator})"
        result = await self._acting_port().unban(guild, user, reason=audit)
        if isinstance(result, Gone):
            raise NotBanned(user)
        if not isinstance(result, Done):
            if removed is not None:
                await self._restore_tempban(removed)
            raise UnbanRefused(user, _why(result))
        await self._modlog(
            guild, user, "unban", f"🕊️ <@{user}> was unbanned by <@{moderator}>: {reason}"
        )
        return removed is not None

    async def _drop_tempban(self, guild: int, user: int) -> TempbanRecord | None:
        store, key = self.store, keys.member_key(guild, user)

        def write(txn: Any) -> TempbanRecord | None:
            raw = txn.get(key, db=store.db("tempbans"))
            if raw is None:
                return None
            record = TEMPBAN.decode(raw)
            txn.delete(key, db=store.db("tempbans"))
            delete_timer(txn, store, f"{UNBAN}:{guild}:{user}", record.until)
            return record

        return await store.write(write)

    async def _restore_tempban(self, record: TempbanRecord) -> None:
        store, key = self.store, keys.member_key(record.guild, record.user)

        def write(txn: Any) -> None:
            if txn.get(key, db=store.db("tempbans")) is None:
                txn.put(key, TEMPBAN.encode(record), db=store.db("tempbans"))
                put_timer(
                    txn, store, f"{UNBAN}:{record.guild}:{record.user}", self._unban_timer(record)
                )

        await store.write(write)
        self.timers.kick()

    async def ban_lifted(self, guild: int, user: int) -> bool:
        """A ban was lifted in Discord (the gateway's GUILD_BAN_REMOVE): cancel the pending
        unban, so a later tempban expiry cannot act on a newer ban. True if one was
        cancelled. A tempban already due is left to its own handler, which is lifting it."""
        store, key, now = self.store, keys.member_key(guild, user), self.now()

        def write(txn: Any) -> bool:
            raw = txn.get(key, db=store.db("tempbans"))
            if raw is None:
                return False
            record = TEMPBAN.decode(raw)
            if record.until <= now:
                return False
            txn.delete(key, db=store.db("tempbans"))
            delete_timer(txn, store, f"{UNBAN}:{guild}:{user}", record.until)
            text = f"🕊️ <@{user}>'s ban was lifted in Discord; the pending unban is cancelled"
            self._put_modlog(txn, guild, user, "lifted", text, now)
            return True

        cancelled = await store.write(write)
        if cancelled:
            self.timers.kick()
        return cancelled

    async def _on_unban(self, timer: TimerRecord) -> None:
        guild, user = _member_target(timer.target)
        record = self.tempban_of(guild, user)
        if record is None or record.until != timer.due:
            await self._remove_timer(timer)
            return
        reason = f"Tempban expired: {record.reason}"
        settled(await self._port().unban(guild, user, reason=reason[:512]))
        store, key = self.store, keys.member_key(guild, user)

        def write(txn: Any) -> None:
            delete_timer(txn, store, timer_id(timer), timer.due)
            raw = txn.get(key, db=store.db("tempbans"))
            if raw is not None and TEMPBAN.decode(raw).until == timer.due:
                txn.delete(key, db=store.db("tempbans"))
                text = f"⌛ <@{user}>'s tempban expired and the ban was lifted ({record.reason})"
                self._put_modlog(txn, guild, user, "expired", text, self.now())

        await store.write(write)
        self.timers.kick()

    # --- modlog ---------------------------------------------------------------------------

    async def _modlog(self, guild: int, user: int, event: str, text: str) -> None:
        now = self.now()

        def write(txn: Any) -> None:
            self._put_modlog(txn, guild, user, event, text, now)

        await self.store.write(write)
        self.timers.kick()

    def _put_modlog(
        self, txn: Any, guild: int, user: int, event: str, text: str, now: float
    ) -> None:
        """A modlog post as a timer due now, in the caller's transaction, so the post is
        as durable as the change it reports (and sent once, with its nonce)."""
        if self._config_in(txn, guild).modlog_channel == 0:
            return
        target = f"{guild}:{user}:{event}:{int(now * 1000)}"
        record = TimerRecord(MODLOG, target, now, {"text": text}, guild_id=guild)
        put_timer(txn, self.store, f"{MODLOG}:{target}", record)

    async def _on_modlog(self, timer: TimerRecord) -> None:
        channel = self.config(timer.guild_id).modlog_channel
        if channel:
            nonce = message_nonce(timer.kind, timer.target, timer.due)
            settled(await self._port().send_message(channel, str(timer.extra["text"]), nonce=nonce))
        await self._remove_timer(timer)

    async def _remove_timer(self, timer: TimerRecord) -> None:
        store = self.store

        def write(txn: Any) -> None:
            delete_timer(txn, store, timer_id(timer), timer.due)

        await store.write(write)

    # --- birthdays ------------------------------------------------------------------------

    async def set_birthday(
        self, guild: int, user: int, birthday: Birthday, timezone: str | None
    ) -> BirthdayView:
        """Keep the member's birthday and schedule its role grant, removal and
        announcement. A birthday that is today is granted at once (its grant timer is
        already due). A role held from a previous date is taken off first."""
        tz_name = "" if timezone is None else zone(timezone).key
        await self._take_role_off(guild, user)
        store, key = self.store, keys.member_key(guild, user)
        record = BirthdayRecord(guild, user, birthday.month, birthday.day, tz_name)

        def write(txn: Any) -> BirthdayRecord:
            raw = txn.get(key, db=store.db("birthdays"))
            if raw is not None:
                self._delete_birthday_timers(txn, BIRTHDAY.decode(raw))
            return self._schedule_birthday(txn, record, self._config_in(txn, guild), self.now())

        written = await store.write(write)
        self.timers.kick()
        now = self.now()
        coming = self._first(written, self.config(guild), now, lambda o: o.ends > now)
        return BirthdayView(written, coming)

    async def remove_birthday(self, guild: int, user: int) -> BirthdayRecord:
        """Forget the member's birthday and its timers, taking the role off if it is on."""
        record = self.birthday_of(guild, user)
        if record is None:
            raise NotFound("birthday for", f"<@{user}>")
        await self._take_role_off(guild, user)
        store, key = self.store, keys.member_key(guild, user)

        def write(txn: Any) -> None:
            raw = txn.get(key, db=store.db("birthdays"))
            if raw is not None:
                self._delete_birthday_timers(txn, BIRTHDAY.decode(raw))
                txn.delete(key, db=store.db("birthdays"))

        await store.write(write)
        return record

    async def _take_role_off(self, guild: int, user: int) -> None:
        """Remove the birthday role if the member holds it (or may: it is their birthday
        and a grant may have landed unrecorded); raise ``RoleNotRemovable`` if Discord
        will not, changing nothing."""
        record = self.birthday_of(guild, user)
        if record is None:
            return
        config, now = self.config(guild), self.now()
        role = record.role_held
        if role == 0 and config.birthday_role:
            current = self._first(record, config, now, lambda o: o.ends > now)
            role = config.birthday_role if current.starts <= now else 0
        if role == 0:
            return
        result = await self._acting_port().remove_role(guild, user, role, reason="Birthday removed")
        if not isinstance(result, Done | Gone):
            raise RoleNotRemovable(role, _why(result))

    def _zones(self, record: BirthdayRecord, config: SchedulerConfig) -> tuple[ZoneInfo, ZoneInfo]:
        guild_tz = zone(config.timezone)
        return (zone(record.tz) if record.tz else guild_tz), guild_tz

    def _first(
        self,
        record: BirthdayRecord,
        config: SchedulerConfig,
        now: float,
        still_open: Callable[[Occurrence], bool],
        after_year: int | None = None,
    ) -> Occurrence:
        member_tz, guild_tz = self._zones(record, config)
        birthday = Birthday(record.month, record.day)
        occurrences = upcoming(
            birthday,
            now,
            member_tz=member_tz,
            guild_tz=guild_tz,
            announce_hour=config.birthday_hour,
            after_year=after_year,
        )
        return next(o for o in occurrences if still_open(o))

    def _schedule_birthday(
        self, txn: Any, record: BirthdayRecord, config: SchedulerConfig, now: float
    ) -> BirthdayRecord:
        """Put the three timers of the birthday's next occurrences and the record that
        names them, in ``txn``."""
        role_open = self._first(record, config, now, lambda o: o.ends > now)
        announce_open = self._first(record, config, now, lambda o: o.announce_until > now)
        scheduled = replace(
            record,
            grant_due=role_open.starts,
            removal_due=role_open.ends,
            announce_due=announce_open.announce,
        )
        self._put_birthday_timer(txn, scheduled, BIRTHDAY_GRANT, role_open)
        self._put_birthday_timer(txn, scheduled, BIRTHDAY_REMOVAL, role_open)
        self._put_birthday_timer(txn, scheduled, BIRTHDAY_ANNOUNCE, announce_open)
        txn.put(
            keys.member_key(record.guild, record.user),
            BIRTHDAY.encode(scheduled),
            db=self.store.db("birthdays"),
        )
        return scheduled

    def _put_birthday_timer(
        self, txn: Any, record: BirthdayRecord, kind: str, occurrence: Occurrence
    ) -> None:
        due = getattr(record, BIRTHDAY_DUE_FIELD[kind])
        target = f"{record.guild}:{record.user}"
        timer = TimerRecord(kind, target, due, {"year": occurrence.year}, guild_id=record.guild)
        put_timer(txn, self.store, f"{kind}:{target}", timer)

    def _delete_birthday_timers(self, txn: Any, record: BirthdayRecord) -> None:
        target = f"{record.guild}:{record.user}"
        for kind, due_field in BIRTHDAY_DUE_FIELD.items():
            delete_timer(txn, self.store, f"{kind}:{target}", getattr(record, due_field))

    async def _on_birthday(self, timer: TimerRecord) -> None:
        guild, user = _member_target(timer.target)
        record = self.birthday_of(guild, user)
        due_field = BIRTHDAY_DUE_FIELD[timer.kind]
        if record is None or getattr(record, due_field) != timer.due:
            await self._remove_timer(timer)
            return
        config, now, year = self.config(guild), self.now(), int(timer.extra["year"])
        this = self._first(record, config, now, lambda o: True, after_year=year - 1)
        role_held = record.role_held
        if timer.kind == BIRTHDAY_GRANT:
            role_held = await self._grant(record, config, this, now)
        elif timer.kind == BIRTHDAY_REMOVAL:
            role = record.role_held or config.birthday_role
            if role:
                settled(await self._port().remove_role(guild, user, role, reason="Birthday over"))
            role_held = 0
        else:
            await self._announce(record, config, this, now, timer)
        await self._reschedule_kind(timer, record, config, now, year, role_held)

    async def _grant(
        self, record: BirthdayRecord, config: SchedulerConfig, this: Occurrence, now: float
    ) -> int:
        """The role the member holds after the grant timer: granted only while it is
        still their birthday in their zone."""
        role = config.birthday_role
        if role == 0:
            return record.role_held
        if not this.starts <= now < this.ends:
            self._drop(BIRTHDAY_GRANT, record, now - this.ends)
            return record.role_held
        port = self._port()
        result = settled(await port.add_role(record.guild, record.user, role, reason="Birthday"))
        return role if isinstance(result, Done) else record.role_held

    async def _announce(
        self,
        record: BirthdayRecord,
        config: SchedulerConfig,
        this: Occurrence,
        now: float,
        timer: TimerRecord,
    ) -> None:
        if config.birthday_channel == 0:
            return
        if now >= this.announce_until:
            self._drop(BIRTHDAY_ANNOUNCE, record, now - this.announce_until)
            return
        text = f"🎂 Happy birthday, <@{record.user}>!"
        nonce = message_nonce(timer.kind, timer.target, timer.due)
        result = await self._port().send_message(
            config.birthday_channel, text, nonce=nonce, mention_user_ids=(record.user,)
        )
        settled(result)

    def _drop(self, kind: str, record: BirthdayRecord, late_seconds: float) -> None:
        self._dropped.labels(kind).inc()
        log_event(
            log,
            "scheduler_dropped",
            level=logging.WARNING,
            kind=kind,
            guild=record.guild,
            user=record.user,
            late_seconds=int(late_seconds),
        )

    async def _reschedule_kind(
        self,
        timer: TimerRecord,
        record: BirthdayRecord,
        config: SchedulerConfig,
        now: float,
        year: int,
        role_held: int,
    ) -> None:
        """Remove the fired timer and put next year's of the same kind, in one write."""
        store, key = self.store, keys.member_key(record.guild, record.user)
        due_field = BIRTHDAY_DUE_FIELD[timer.kind]
        if timer.kind == BIRTHDAY_ANNOUNCE:
            following = self._first(record, config, now, lambda o: o.announce_until > now, year)
            due = following.announce
        else:
            following = self._first(record, config, now, lambda o: o.ends > now, year)
            due = following.starts if timer.kind == BIRTHDAY_GRANT else following.ends

        def write(txn: Any) -> None:
            delete_timer(txn, store, timer_id(timer), timer.due)
            raw = txn.get(key, db=store.db("birthdays"))
            if raw is None:
                return
            current = BIRTHDAY.decode(raw)
            if getattr(current, due_field) != timer.due:
                return
            changes: dict[str, Any] = {"role_held": role_held, due_field: due}
            updated = replace(current, **changes)
            txn.put(key, BIRTHDAY.encode(updated), db=store.db("birthdays"))
            self._put_birthday_timer(txn, updated, timer.kind, following)

        await store.write(write)
        self.timers.kick()

    # --- reminders ------------------------------------------------------------------------

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


def _why(result: DiscordResult) -> str:
    """What a refusal means, for the moderator."""
    if isinstance(result, Forbidden):
        return (
            "Croupier lacks the permission for it here, or its role sits below the member's "
            f"(Discord code {result.code})"
        )
    if isinstance(result, Gone):
        return f"Discord does not know that user (code {result.code})"
    assert isinstance(result, Retry), result
    return f"Discord did not answer ({result.reason}); try again"
