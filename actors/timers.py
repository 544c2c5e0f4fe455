"""Durable timers: an LMDB index by due time, fired by one scheduler task.

A timer is written by its owner in the same transaction as the state that needs it (a
game's deadline is written with the game) and deleted the same way when no longer needed,
so a timer is never lost and never outlives its reason. The scheduler only reads the index
and calls the handler of the timer's kind; the handler's own write removes the timer.

Catch-up policy: timers that fell due while the server was down fire at start, oldest
first, at most ``timer_fires_concurrent_max`` at a time. A handler that fails is retried
after ``timer_retry_seconds``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from actors import keys
from actors.games.records import TIMER, TimerRecord
from storage import Store

log = logging.getLogger("croupier.timers")

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
        self.fired = 0

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
                due, next_due = self._due_now()
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

    def _due_now(self) -> tuple[list[tuple[bytes, TimerRecord]], float | None]:
        now = self.wall_clock()
        due: list[tuple[bytes, TimerRecord]] = []
        next_due: float | None = None
        with self.store.read() as txn:
            for key, value in txn.cursor(db=self.store.db("timers")):
                key = bytes(key)
                record = TIMER.decode(value)
                if key in self._in_flight:
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
        return due, next_due

    async def _fire(self, key: bytes, record: TimerRecord) -> None:
        try:
            async with self._limit:
                handler = self._handlers.get(record.kind)
                if handler is None:
                    log.error("timer %r has no handler for kind %r", key, record.kind)
                    self._retry_at[key] = self.wall_clock() + self._retry_seconds
                    return
                await handler(record)
                self.fired += 1
                with self.store.read() as txn:
                    still_there = txn.get(key, db=self.store.db("timers")) is not None
                if still_there:
                    # The handler had nothing to do yet (for example the deadline moved
                    # under it); look again later rather than spinning on it.
                    self._retry_at[key] = self.wall_clock() + self._retry_seconds
                else:
                    self._retry_at.pop(key, None)
        except Exception:
            log.exception(
                "timer %r (%s %s) failed; retrying later", key, record.kind, record.target
            )
            self._retry_at[key] = self.wall_clock() + self._retry_seconds
        finally:
            self._in_flight.discard(key)
            self._wake.set()


def put_timer(txn: Any, store: Store, timer_id: str, record: TimerRecord) -> bytes:
    key = keys.timer_key(record.due, timer_id)
    txn.put(key, TIMER.encode(record), db=store.db("timers"))
    return key


def delete_timer(txn: Any, store: Store, timer_id: str, due: float) -> None:
    txn.delete(keys.timer_key(due, timer_id), db=store.db("timers"))
