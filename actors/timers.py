"""Durable timers: an LMDB index by due time, fired by one scheduler task.

A timer is written by its owner in the same transaction as the state that needs it (a
game's deadline is written with the game, an unban with its tempban) and deleted the same
way once its effect is confirmed, so a timer is never lost and never outlives its reason.
The scheduler only reads the index and calls the handler of the timer's kind; the
handler's own write removes the timer.

Finding what is due is a cursor seek: the loop starts from a floor key below which every
timer is already known to it (firing, waiting for a retry, or waiting for its guild), so
a million pending timers cost one seek, not a walk. Catch-up at start is the same walk:
timers that fell due while the server was down fire oldest first, at most
``timer_fires_concurrent_max`` at a time.

A handler answers by returning (done: its write removed the timer, or it had nothing to
do yet) or by raising:

- ``TimerRetry``: fire again later. Without ``after_seconds`` it counts as a failed
  attempt and waits a doubling, jittered delay; with it (Discord's 429 ``retry_after``)
  it waits that long and counts nothing.
- ``GuildForbidden``: the bot lacks a permission in the timer's guild. Every timer of a
  Discord kind of that guild waits; one probe is fired after a doubling delay, and when it
  succeeds the others go. It is reported once per outage: one log line and one count.
- a ``RuntimeFailure`` other than a crash (the owner's mailbox is full, an ask timed
  out): retried after ``retry_seconds``, counting nothing.
- anything else: a failed attempt, as ``TimerRetry`` without a delay.

A timer that fails ``timer_attempts_max`` attempts in a row (its handler fails, or it has
no handler), or whose record cannot be read, is parked: moved into the ``parked``
sub-database, counted and logged, so no timer stops the loop.
"""

from __future__ import annotations

import heapq
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from actors import keys
from actors.failures import ActorCrashed, RuntimeFailure
from actors.parked import error_text, park_record
from actors.timer_records import (
    TIMER,
    GuildForbidden,
    TimerHandler,
    TimerRecord,
    TimerRetry,
    backoff_seconds,
    kind_of,
)
from metrics import log_event
from storage import RecordDecodeError, Store

log = logging.getLogger("croupier.timers")


@dataclass
class _GuildBackoff:
    """A guild where the bot lacks a permission: its waiting timers, and the next probe."""

    reason: str
    seconds: float
    until: float
    waiting: set[bytes] = field(default_factory=set)
    probing: bytes | None = None


class TimerService:
    def __init__(
        self,
        store: Store,
        *,
        wall_clock: Callable[[], float],
        fires_concurrent_max: int | None = None,
        poll_seconds_max: float = 5.0,
        retry_seconds: float = 30.0,
        attempts_max: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        limits = store.limits
        self.store = store
        self.wall_clock = wall_clock
        self.metrics = store.metrics
        self._handlers: dict[str, TimerHandler] = {}
        self._discord_kinds: set[str] = set()
        self._in_flight: set[bytes] = set()
        # Keys waiting for a retry, with the wall-clock second they may fire again; the
        # heap holds the same (time, key) pairs (stale ones are skipped when popped).
        self._deferred: dict[bytes, float] = {}
        self._wakeups: list[tuple[float, bytes]] = []
        self._guilds: dict[int, _GuildBackoff] = {}
        # Every key waiting in some guild's backoff (the union of their ``waiting``).
        self._waiting: set[bytes] = set()
        # Every timer below this key is in flight, deferred, waiting for its guild or
        # deleted; new timers written below it come with a ``kick``.
        self._floor = b""
        self._wake = trio.Event()
        self._fires_max = (
            limits.timer_fires_concurrent_max
            if fires_concurrent_max is None
            else fires_concurrent_max
        )
        self._poll_seconds_max = poll_seconds_max
        self._retry_seconds = retry_seconds
        self._attempts_max = limits.timer_attempts_max if attempts_max is None else attempts_max
        self._rng = rng or random.Random()
        # Failed attempts in a row, per timer key; cleared when a firing succeeds.
        self._failures: dict[bytes, int] = {}
        self.parked = 0
        self.retried = 0

    def register(self, kind: str, handler: TimerHandler, *, discord: bool = False) -> None:
        """Handle timers of ``kind``. A ``discord`` kind acts on a guild through Discord:
        its timers carry a ``guild_id`` and wait while that guild is backed off."""
        assert kind not in self._handlers, kind
        self._handlers[kind] = handler
        if discord:
            self._discord_kinds.add(kind)
        for counter in (self.metrics.timers_fired, self.metrics.timers_retried):
            counter.labels(kind)
        self.metrics.timers_parked.labels(kind)
        self.metrics.timer_failures.labels(kind)

    def kick(self) -> None:
        """A new timer may be due earlier than the one being waited for."""
        self._floor = b""
        self._wake.set()

    def guilds_backed_off(self) -> dict[int, str]:
        """Guilds whose Discord timers wait for a missing permission, with the reason."""
        return {guild: backoff.reason for guild, backoff in self._guilds.items()}

    def overdue(self, grace_seconds: float, *, now: float | None = None) -> int:
        """How many timers are due more than ``grace_seconds`` before ``now`` (a health
        figure), counting at most ``timer_overdue_counted_max``. A worker thread passes
        ``now``, read on the trio thread."""
        now = self.wall_clock() if now is None else now
        limit = keys.timer_key(now - grace_seconds, "")
        count, cap = 0, self.store.limits.timer_overdue_counted_max
        with self.store.read() as txn:
            for key in txn.cursor(db=self.store.db("timers")).iternext(values=False):
                if bytes(key) >= limit or count >= cap:
                    break
                count += 1
        return count

    def pending_by_kind(self) -> dict[str, int]:
        """Pending timers per kind (a walk of the whole index: run it in a thread)."""
        counts: dict[str, int] = {}
        with self.store.read() as txn:
            for value in txn.cursor(db=self.store.db("timers")).iternext(keys=False):
                kind = kind_of(value)
                label = kind if kind in self._handlers else "unknown"
                counts[label] = counts.get(label, 0) + 1
        return counts

    async def run_gauges(
        self,
        *,
        overdue_grace_seconds: float,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Keep the pending and overdue gauges fresh (never before boot is done: the
        first count runs once this task starts, off the event loop)."""
        task_status.started()
        while True:
            counts = await trio.to_thread.run_sync(self.pending_by_kind)
            for kind in {*self._handlers, "unknown"}:
                self.metrics.timers_pending.labels(kind).set(counts.get(kind, 0))
            overdue = await trio.to_thread.run_sync(
                partial(self.overdue, overdue_grace_seconds, now=self.wall_clock())
            )
            self.metrics.timers_overdue.set(overdue)
            await trio.sleep(self.store.limits.timer_pending_count_seconds)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started()
            rescan_at = trio.current_time() + self._poll_seconds_max
            while True:
                self._wake = trio.Event()
                wait = self._poll_seconds_max
                free = self._fires_max - len(self._in_flight)
                if free > 0:
                    due, unreadable, next_at = self._due_now(free)
                    for key, error in unreadable:
                        self.metrics.timer_failures.labels("unknown").inc()
                        await self._park(key, None, error)
                    for key, record in due:
                        nursery.start_soon(self._fire, key, record)
                    if next_at is not None:
                        wait = min(wait, max(0.0, next_at - self.wall_clock()))
                with trio.move_on_after(wait):
                    await self._wake.wait()
                if trio.current_time() >= rescan_at:
                    # Look at the whole index again now and then, even while busy, for
                    # timers an owner wrote below the floor without a kick.
                    self._floor = b""
                    rescan_at = trio.current_time() + self._poll_seconds_max

    def _due_now(
        self, free: int
    ) -> tuple[list[tuple[bytes, TimerRecord]], list[tuple[bytes, str]], float | None]:
        """Up to ``free`` timers to fire now (retries come first, then the index from the
        floor up), records that cannot be read (to be parked), and when to look next."""
        now = self.wall_clock()
        due: list[tuple[bytes, TimerRecord]] = []
        unreadable: list[tuple[bytes, str]] = []
        db = self.store.db("timers")
        with self.store.read() as txn:
            for key in self._retries_due(now, free):
                raw = txn.get(key, db=db)
                if raw is not None:
                    self._take(key, bytes(raw), due, unreadable)
            self._probes_due(txn, now, free - len(due), due, unreadable)
            cursor = txn.cursor(db=db)
            next_at: float | None = None
            found = cursor.set_range(self._floor) if self._floor else cursor.first()
            while found and len(due) < free:
                key = bytes(cursor.key())
                if not self._known(key):
                    if keys.read_u64(key) > int(now * 1000):
                        next_at = keys.read_u64(key) / 1000
                        break
                    self._take(key, bytes(cursor.value()), due, unreadable)
                self._floor = key + b"\x00"
                found = cursor.next()
        for when in (self._wakeups[0][0] if self._wakeups else None, self._next_probe()):
            if when is not None:
                next_at = when if next_at is None else min(next_at, when)
        return due, unreadable, next_at

    def _known(self, key: bytes) -> bool:
        return key in self._in_flight or key in self._deferred or key in self._waiting

    def _take(
        self,
        key: bytes,
        raw: bytes,
        due: list[tuple[bytes, TimerRecord]],
        unreadable: list[tuple[bytes, str]],
    ) -> None:
        """Fire ``key`` now, unless its guild is backed off (then it waits for it)."""
        try:
            record = TIMER.decode(raw)
        except RecordDecodeError as exc:
            unreadable.append((key, error_text(exc)))
            return
        backoff = self._guilds.get(record.guild_id) if record.kind in self._discord_kinds else None
        if backoff is not None and backoff.probing != key:
            self._wait_for_guild(backoff, key)
            return
        # In flight from here, so the walk that follows does not take it twice.
        self._in_flight.add(key)
        due.append((key, record))

    def _wait_for_guild(self, backoff: _GuildBackoff, key: bytes) -> None:
        backoff.waiting.add(key)
        self._waiting.add(key)

    def _retries_due(self, now: float, free: int) -> list[bytes]:
        ready: list[bytes] = []
        while self._wakeups and self._wakeups[0][0] <= now and len(ready) < free:
            when, key = heapq.heappop(self._wakeups)
            if self._deferred.get(key) == when:
                del self._deferred[key]
                ready.append(key)
        return ready

    def _probes_due(
        self,
        txn: Any,
        now: float,
        free: int,
        due: list[tuple[bytes, TimerRecord]],
        unreadable: list[tuple[bytes, str]],
    ) -> None:
        """One waiting timer (the oldest still there) per backed-off guild whose wait is
        over, to probe it."""
        db = self.store.db("timers")
        for guild, backoff in list(self._guilds.items()):
            if free <= 0:
                break
            if backoff.probing is not None or backoff.until > now:
                continue
            for key in sorted(backoff.waiting):
                backoff.waiting.discard(key)
                self._waiting.discard(key)
                raw = txn.get(key, db=db)
                if raw is not None:
                    backoff.probing = key
                    self._take(key, bytes(raw), due, unreadable)
                    free -= 1
                    break
            if backoff.probing is None and not backoff.waiting:
                # Every timer that waited was removed by its owner (the bans were lifted
                # by hand, say): nothing is left to probe with, so the guild is forgotten,
                # and its next timer finds out afresh.
                del self._guilds[guild]
                self.metrics.timers_guilds_backed_off.set(len(self._guilds))

    def _next_probe(self) -> float | None:
        times = [b.until for b in self._guilds.values() if b.probing is None and b.waiting]
        return min(times, default=None)

    def _defer(self, key: bytes, seconds: float) -> None:
        when = self.wall_clock() + seconds
        self._deferred[key] = when
        heapq.heappush(self._wakeups, (when, key))

    async def _fire(self, key: bytes, record: TimerRecord) -> None:
        try:
            handler = self._handlers.get(record.kind)
            if handler is None:
                await self._failed(key, record, f"no handler for timer kind {record.kind!r}")
                return
            await handler(record)
            self._succeeded(key, record)
        except TimerRetry as retry:
            if retry.after_seconds is not None:
                self._retry_later(key, record, retry.after_seconds * self._rng.uniform(1, 1.1))
            else:
                await self._failed(key, record, retry.reason)
        except GuildForbidden as forbidden:
            await self._guild_forbidden(key, record, forbidden.reason)
        except ActorCrashed as exc:
            # A crash is a failure (``ActorCrashed`` is a ``RuntimeFailure``, so it is
            # caught first).
            log.exception("timer %r (%s %s) failed", key, record.kind, record.target)
            await self._failed(key, record, error_text(exc))
        except RuntimeFailure:
            # A busy owner is no fault of the timer: try again later, counting nothing.
            log.warning("timer %r (%s %s) deferred: busy", key, record.kind, record.target)
            self._defer(key, self._retry_seconds)
        except Exception as exc:
            log.exception("timer %r (%s %s) failed", key, record.kind, record.target)
            await self._failed(key, record, error_text(exc))
        finally:
            self._release_probe(key, record)
            self._in_flight.discard(key)
            self._wake.set()

    def _succeeded(self, key: bytes, record: TimerRecord) -> None:
        self.metrics.timers_fired.labels(record.kind).inc()
        self._failures.pop(key, None)
        self._guild_restored(key, record)
        with self.store.read() as txn:
            still_there = txn.get(key, db=self.store.db("timers")) is not None
        if still_there:
            # The handler had nothing to do yet (for example the deadline moved under
            # it); look again later rather than spinning on it.
            self._defer(key, self._retry_seconds)

    def _retry_later(self, key: bytes, record: TimerRecord, seconds: float) -> None:
        self.retried += 1
        self.metrics.timers_retried.labels(record.kind).inc()
        log.info("timer %r (%s %s) retried in %.1f s", key, record.kind, record.target, seconds)
        self._defer(key, seconds)

    async def _failed(self, key: bytes, record: TimerRecord, error: str) -> None:
        """Count a failed attempt; retry it after a backoff, or park it past
        ``attempts_max``."""
        label = record.kind if record.kind in self._handlers else "unknown"
        self.metrics.timer_failures.labels(label).inc()
        failures = self._failures.get(key, 0) + 1
        if failures >= self._attempts_max:
            await self._park(key, record, error, failures)
            return
        log.error("timer %r (%s %s) failed: %s", key, record.kind, record.target, error)
        self._failures[key] = failures
        limits = self.store.limits
        wait = backoff_seconds(
            failures, limits.timer_retry_seconds_min, limits.timer_retry_seconds_max, self._rng
        )
        self._retry_later(key, record, wait)

    async def _guild_forbidden(self, key: bytes, record: TimerRecord, reason: str) -> None:
        """Back the guild off (reported once per outage), and let ``key`` wait for it."""
        guild = record.guild_id
        if record.kind not in self._discord_kinds or guild == 0:
            # Only a timer that names its guild can wait for it; anything else is a
            # handler's mistake, to be counted and parked like any failure.
            await self._failed(key, record, f"missing permission without a guild: {reason}")
            return
        limits = self.store.limits
        now = self.wall_clock()
        backoff = self._guilds.get(guild)
        if backoff is None:
            seconds = limits.timer_guild_backoff_seconds_min
            backoff = _GuildBackoff(reason, seconds, now + seconds)
            self._guilds[guild] = backoff
            self.metrics.timers_guild_forbidden.inc()
            self.metrics.timers_guilds_backed_off.set(len(self._guilds))
            log_event(
                log,
                "timer_guild_forbidden",
                level=logging.ERROR,
                guild=guild,
                kind=record.kind,
                reason=reason,
                retry_seconds=seconds,
            )
        elif backoff.probing == key:
            # The probe failed too: wait twice as long, and say nothing more.
            backoff.probing = None
            backoff.seconds = min(limits.timer_guild_backoff_seconds_max, backoff.seconds * 2)
            backoff.until = now + backoff.seconds
        self._wait_for_guild(backoff, key)

    def _release_probe(self, key: bytes, record: TimerRecord) -> None:
        """A probe that ended neither in success nor in a missing permission (a 429, a
        failure, a busy owner) leaves the guild backed off, and the next probe waits at
        least as long as this timer's own retry: otherwise, under a rate limit, every
        waiting timer would be tried in turn at once."""
        backoff = self._guilds.get(record.guild_id)
        if backoff is not None and backoff.probing == key:
            backoff.probing = None
            backoff.until = max(backoff.until, self._deferred.get(key, self.wall_clock()))

    def _guild_restored(self, key: bytes, record: TimerRecord) -> None:
        backoff = self._guilds.get(record.guild_id)
        if backoff is None or record.kind not in self._discord_kinds:
            return
        del self._guilds[record.guild_id]
        self.metrics.timers_guilds_backed_off.set(len(self._guilds))
        log_event(log, "timer_guild_restored", guild=record.guild_id, waiting=len(backoff.waiting))
        for waiting in backoff.waiting:
            self._waiting.discard(waiting)
            self._defer(waiting, 0.0)

    async def _park(
        self, key: bytes, record: TimerRecord | None, error: str, attempts: int = 1
    ) -> None:
        """Move the timer record into ``parked`` in one commit (if it is still there)."""
        store, now = self.store, self.wall_clock()

        def write(txn: Any) -> bool:
            parked = park_record(
                txn,
                store,
                kind="timer",
                ident=key.hex(),
                source_db="timers",
                source_key=key,
                error=error,
                attempts=attempts,
                parked_at=now,
                target=record.target if record is not None else "",
            )
            return parked is not None

        self._failures.pop(key, None)
        self._deferred.pop(key, None)
        try:
            moved = await self.store.write(write)
        except Exception:
            # The store refused the write (it fails only this request): try again later.
            log.exception("parking timer %r failed; retrying later", key)
            self._defer(key, self._retry_seconds)
            return
        if moved:
            self.parked += 1
            self.metrics.parked.labels("timer").inc()
            kind = record.kind if record is not None else "unreadable"
            self.metrics.timers_parked.labels(kind if kind in self._handlers else "unknown").inc()
            log_event(
                log,
                "timer_parked",
                level=logging.ERROR,
                timer=key.hex(),
                kind=kind,
                target=record.target if record is not None else "",
                error=error,
            )
