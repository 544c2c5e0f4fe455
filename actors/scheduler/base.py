"""What the scheduler's parts share: timer kinds, the store and the Discord port, the
guild's configuration, and the modlog.

A modlog post is a timer of its own, written in the transaction of the change it
reports, so the post is as durable as the change and is sent once, with its nonce.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from actors import keys
from actors.discord_port import DiscordPort, DiscordResult, Forbidden, Gone, Retry
from actors.errors import Busy
from actors.scheduler.records import SCHEDULER_CONFIG, SchedulerConfig
from actors.timer_records import TimerRecord, delete_timer, put_timer, settled
from actors.timers import TimerService
from storage import Store

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


def timer_id(timer: TimerRecord) -> str:
    return f"{timer.kind}:{timer.target}"


def message_nonce(kind: str, target: str, due: float) -> str:
    """A message's nonce, the same for every firing of one timer (so a retried send posts
    once) and different for every timer: 24 characters, under Discord's 25."""
    digest = hashlib.sha256(f"{kind}:{target}:{int(due * 1000)}".encode()).digest()
    return base64.b32encode(digest[:15]).decode()


def member_target(target: str) -> tuple[int, int]:
    guild, user = target.split(":")[:2]
    return int(guild), int(user)


class SchedulerBase:
    """The store, timers, clock and Discord port every part of the scheduler acts on."""

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

    def config(self, guild: int) -> SchedulerConfig:
        with self.store.read() as txn:
            raw = txn.get(keys.guild_key(guild), db=self.store.db("scheduler_config"))
        return SchedulerConfig() if raw is None else SCHEDULER_CONFIG.decode(raw)

    def _config_in(self, txn: Any, guild: int) -> SchedulerConfig:
        raw = txn.get(keys.guild_key(guild), db=self.store.db("scheduler_config"))
        return SchedulerConfig() if raw is None else SCHEDULER_CONFIG.decode(raw)

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

    async def set_modlog(self, guild: int, channel: int) -> SchedulerConfig:
        return await self._update_config(guild, modlog_channel=channel)

    async def _update_config(self, guild: int, **changes: Any) -> SchedulerConfig:
        store, key = self.store, keys.guild_key(guild)

        def write(txn: Any) -> SchedulerConfig:
            raw = txn.get(key, db=store.db("scheduler_config"))
            current = SchedulerConfig() if raw is None else SCHEDULER_CONFIG.decode(raw)
            updated = replace(current, **changes)
            txn.put(key, SCHEDULER_CONFIG.encode(updated), db=store.db("scheduler_config"))
            return updated

        return await store.write(write)

    def _port(self) -> DiscordPort:
        if self.discord is None:
            # No Discord in this process: the timer waits for a process that has one.
            raise Busy()
        return self.discord

    def _acting_port(self) -> DiscordPort:
        """The port for a command's own Discord action (commands refuse with
        ``discord_required`` before calling where there is none)."""
        assert self.discord is not None, "commands check for Discord before acting"
        return self.discord

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


def refusal_text(result: DiscordResult) -> str:
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
