"""Durable timers: an LMDB index by due time, fired by one scheduler task.

A timer is written by its owner in the same transaction as the state that needs it (a
game's deadline is written with the game) and deleted the same way when no longer needed,
so a timer is never lost and never outlives its reason. The scheduler only reads the index
and calls the handler of the timer's kind; the handler's own write removes the timer.

Catch-up policy: timers that fell due while the server was down fire at start, oldest
first, at most ``timer_fires_concurrent_max`` at a time. A handler that fails is retried
after ``timer_retry_seconds``; a timer that fails ``attempts_max`` times in a row (its
handler raises, or it has no handler), or whose record cannot be read, is parked: moved
into the ``parked`` sub-database, counted and logged, so no timer stops the loop.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from actors import keys
from actors.parked import PARKED, ParkedRecord, error_text, parked_key
from actors.runtime import ActorCrashed, RuntimeFailure
from metrics import log_event
from storage import RecordDecodeError, Store
from storage.codec import RecordCodec

log = logging.getLogger("croupier.timers")


@dataclass
class TimerRecord:
    """One pending timer: its ``kind`` names the handler, ``target`` what it acts on (a
    game id, for a game's deadline), ``due`` the wall-clock second it falls due."""

    kind: str
    target: str
    due: float
    extra: dict[str, Any] = field(default_factory=dict)


TIMER = RecordCodec(TimerRecord, kind="timer", version=1)

TimerHandler = Callable[[TimerRecord], Awaitable[None]]


class TimerService:
    def __init__(
        self,
        store: Store,
        *,
        wall_clock: Callable[[], float],
        fires_concurrent_max: int = 64,
        poll_seconds_max: float = 5.0,
        retry_seconds: float = 30.0,
        attempts_max: int | None = None,
    ) -> None:
        self.store = store
        self.wall_clock = wall_clock
        self._handlers: dict[str, TimerHandler] = {}
        self._in_flight: set[bytes] = set()
        self._retry_at: dict[bytes, float] = {}
        self._wake = trio.Event()
        self._limit = trio.CapacityLimiter(fires_concurrent_max)
        self._poll_seconds_max = poll_seconds_max
        self._retry_seconds = retry_seconds
        self._attempts_max = (
            store.limits.timer_attempts_max if attempts_max is None else attempts_max
        )
        # Failed firings in a row, per timer key; cleared when a firing succeeds.
        self._failures: dict[bytes, int] = {}
        self.fired = 0
        self.parked = 0

    def register(self, kind: str, handler: TimerHandler) -> None:
        assert kind not in self._handlers, kind
        self._handlers[kind] = handler

    def kick(self) -> None:
        """A new timer may be due earlier than the one being waited for."""
        self._wake.set()

    def overdue(self, grace_seconds: float) -> int:
        """How many timers are due more than ``grace_seconds`` ago (a health figure)."""
        limit = keys.timer_key(self.wall_clock() - grace_seconds, "")
        count = 0
        with self.store.read() as txn:
            for key in txn.cursor(db=self.store.db("timers")).iternext(values=False):
                if bytes(key) >= limit:
                    break
                count += 1
        return count

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                self._wake = trio.Event()
                due, next_due, unreadable = self._due_now()
                for key, error in unreadable:
                    self.store.metrics.timer_failures.labels("unknown").inc()
                    await self._park(key, None, error)
                for key, record in due:
                    self._in_flight.add(key)
                    nursery.start_soon(self._fire, key, record)
                wait = self._poll_seconds_max
                if next_due is not None:
                    wait = min(wait, max(0.0, next_due - self.wall_clock()))
                if due:
                    wait = min(wait, self._poll_seconds_max)
                with trio.move_on_after(wait):
                    await self._wake.wait()

    def _due_now(
        self,
    ) -> tuple[list[tuple[bytes, TimerRecord]], float | None, list[tuple[bytes, str]]]:
        """Timers due now, when the next one falls due, and records that cannot be read
        (to be parked)."""
        now = self.wall_clock()
        due: list[tuple[bytes, TimerRecord]] = []
        next_due: float | None = None
        unreadable: list[tuple[bytes, str]] = []
        with self.store.read() as txn:
            for key, value in txn.cursor(db=self.store.db("timers")):
                key = bytes(key)
                if key in self._in_flight:
                    continue
                try:
                    record = TIMER.decode(value)
                except RecordDecodeError as exc:
                    unreadable.append((key, error_text(exc)))
                    continue
                retry = self._retry_at.get(key, -math.inf)
                when = max(record.due, retry)
                if when > now:
                    next_due = when if next_due is None else min(next_due, when)
                    if record.due > now:
                        break
                    continue
                due.append((key, record))
                if len(due) >= 1024:
                    break
        return due, next_due, unreadable

    async def _fire(self, key: bytes, record: TimerRecord) -> None:
        try:
            async with self._limit:
                handler = self._handlers.get(record.kind)
                if handler is None:
                    await self._failed(key, record, f"no handler for timer kind {record.kind!r}")
                    return
                await handler(record)
                self.fired += 1
                self._failures.pop(key, None)
                with self.store.read() as txn:
                    still_there = txn.get(key, db=self.store.db("timers")) is not None
                if still_there:
                    # The handler had nothing to do yet (for example the deadline moved
                    # under it); look again later rather than spinning on it.
                    self._retry_at[key] = self.wall_clock() + self._retry_seconds
                else:
                    self._retry_at.pop(key, None)
        except ActorCrashed as exc:
            log.exception("timer %r (%s %s) failed", key, record.kind, record.target)
            await self._failed(key, record, error_text(exc))
        except RuntimeFailure:
            # A busy owner is no fault of the timer: try again later, counting nothing.
            log.warning("timer %r (%s %s) deferred: busy", key, record.kind, record.target)
            self._retry_at[key] = self.wall_clock() + self._retry_seconds
        except Exception as exc:
            log.exception("timer %r (%s %s) failed", key, record.kind, record.target)
            await self._failed(key, record, error_text(exc))
        finally:
            self._in_flight.discard(key)
            self._wake.set()

    async def _failed(self, key: bytes, record: TimerRecord, error: str) -> None:
        """Count a failed firing; retry it later, or park it past ``attempts_max``."""
        label = record.kind if record.kind in self._handlers else "unknown"
        self.store.metrics.timer_failures.labels(label).inc()
        failures = self._failures.get(key, 0) + 1
        if failures >= self._attempts_max:
            await self._park(key, record, error, failures)
            return
        log.error("timer %r (%s %s) failed: %s", key, record.kind, record.target, error)
        self._failures[key] = failures
        self._retry_at[key] = self.wall_clock() + self._retry_seconds

    async def _park(
        self, key: bytes, record: TimerRecord | None, error: str, attempts: int = 1
    ) -> None:
        """Move the timer record into ``parked`` in one commit (if it is still there)."""
        db_timers, db_parked = self.store.db("timers"), self.store.db("parked")
        now = self.wall_clock()
        target = parked_key("timer", key.hex())

        def write(txn: Any) -> bool:
            raw = txn.get(key, db=db_timers)
            if raw is None:
                return False
            parked = ParkedRecord(
                kind="timer",
                ident=key.hex(),
                source_db="timers",
                source_key=key,
                value=bytes(raw),
                error=error,
                attempts=attempts,
                parked_at=now,
                target=record.target if record is not None else "",
            )
            txn.delete(key, db=db_timers)
            txn.put(target, PARKED.encode(parked), db=db_parked)
            return True

        self._failures.pop(key, None)
        self._retry_at.pop(key, None)
        try:
            moved = await self.store.write(write)
        except Exception:
            # The store refused the write (it fails only this request): try again later.
            log.exception("parking timer %r failed; retrying later", key)
            self._retry_at[key] = self.wall_clock() + self._retry_seconds
            return
        if moved:
            self.parked += 1
            self.store.metrics.parked.labels("timer").inc()
            log_event(
                log,
                "timer_parked",
                level=logging.ERROR,
                timer=key.hex(),
                kind=record.kind if record is not None else "unreadable",
                target=record.target if record is not None else "",
                error=error,
            )


def put_timer(txn: Any, store: Store, timer_id: str, record: TimerRecord) -> bytes:
    key = keys.timer_key(record.due, timer_id)
    txn.put(key, TIMER.encode(record), db=store.db("timers"))
    return key


def delete_timer(txn: Any, store: Store, timer_id: str, due: float) -> None:
    txn.delete(keys.timer_key(due, timer_id), db=store.db("timers"))
