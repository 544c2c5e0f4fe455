"""Birthdays: three timers a year per member (the role's grant at 00:00 and removal at
24:00 in the member's zone, the announcement at the guild's hour in the guild's zone),
each firing putting next year's. A grant is made only while it is still the birthday in
the member's zone, a removal always; an announcement only while it is still that date in
the guild's zone."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

from actors import keys
from actors.discord_port import Done, Gone
from actors.errors import NotFound, RoleNotRemovable
from actors.scheduler.base import (
    BIRTHDAY_ANNOUNCE,
    BIRTHDAY_DUE_FIELD,
    BIRTHDAY_GRANT,
    BIRTHDAY_REMOVAL,
    SchedulerBase,
    log,
    member_target,
    message_nonce,
    refusal_text,
    timer_id,
)
from actors.scheduler.calendar import Birthday, Occurrence, upcoming, zone
from actors.scheduler.records import BIRTHDAY, BirthdayRecord, SchedulerConfig
from actors.timer_records import TimerRecord, delete_timer, put_timer, settled
from metrics import log_event


@dataclass(frozen=True)
class BirthdayView:
    record: BirthdayRecord
    next: Occurrence


class BirthdayMixin(SchedulerBase):
    """Birthdays of every guild."""

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
            raise RoleNotRemovable(role, refusal_text(result))

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
        guild, user = member_target(timer.target)
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
