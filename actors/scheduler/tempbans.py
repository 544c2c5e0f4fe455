"""Tempbans: the record and its unban timer commit before the ban is sent; a refused ban
puts back what was there; a ban lifted in Discord cancels the pending unban; an unban
due during a downtime fires late."""

from __future__ import annotations

from typing import Any

from actors import keys
from actors.discord_port import Done, Gone
from actors.errors import BanRefused, NotBanned, UnbanRefused, format_span
from actors.scheduler.base import UNBAN, SchedulerBase, member_target, refusal_text, timer_id
from actors.scheduler.records import TEMPBAN, TempbanRecord
from actors.timer_records import TimerRecord, delete_timer, put_timer, settled


class TempbanMixin(SchedulerBase):
    """Tempbans of every guild."""

    def tempban_of(self, guild: int, user: int) -> TempbanRecord | None:
        with self.store.read() as txn:
            raw = txn.get(keys.member_key(guild, user), db=self.store.db("tempbans"))
        return None if raw is None else TEMPBAN.decode(raw)

    def tempbans(self, guild: int) -> list[TempbanRecord]:
        """The guild's tempbans, soonest expiry first (at most the list limit)."""
        found = [TEMPBAN.decode(raw) for raw in self._guild_values(guild, "tempbans")]
        found.sort(key=lambda record: record.until)
        return found[: self.limits.scheduler_list_entries_max]

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
            raise BanRefused(user, refusal_text(result))
        text = (
            f"🔨 <@{user}> was banned by <@{moderator}> for {format_span(seconds)} "
            f"(until <t:{int(record.until)}:f>): {reason}"
        )
        await self._modlog(guild, user, "tempban", text)
        return record

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
            raise UnbanRefused(user, refusal_text(result))
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
        guild, user = member_target(timer.target)
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
