"""``croupier bench timers``: firing rate, boot and the cost of adding a timer, on an empty
index and on one holding 1,000,000 pending timers.

Each figure is measured twice, on a store whose index holds no other timer (``_empty``)
and on one holding ``pending`` timers due a day or more ahead (``_1m_pending``), so that
the pair shows whether the size of the index matters:

- ``timers_fire_per_s_*``: timers fired per second when ``due`` of them are overdue at
  once, each by a handler whose own durable write removes it, as the scheduler's do
  (``timer_fires_concurrent_max`` at a time, their deletes sharing group commits);
- ``timers_boot_to_first_fire_s_*``: from opening the store (lock, migrations, writer) to
  the first overdue timer's handler running, the timer service's part of boot;
- ``timers_add_us_*``: the cost of adding one timer inside a write transaction (the
  B-tree insert and the record's encoding), the median of ``adds`` batches of
  ``add_batch`` timers with random due times spread over a year;
- ``timers_add_commit_ms_*``: the median latency of adding one timer in its own durable
  commit through the writer (fsync included, so it shows the disk more than the index).

The pending timers are written directly in big transactions with the real keys and codec.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import trio

from actors import TimerRecord, TimerService
from actors.timer_records import TIMER, delete_timer, put_timer
from bench.load import LOAD_BATCH_ROWS
from bench.measure import progress
from metrics import new_metrics
from storage import Store, open_store

KIND = "bench"
DAY_SECONDS = 86_400.0
YEAR_SECONDS = 365 * DAY_SECONDS


@dataclass(frozen=True)
class Sizes:
    pending: int
    due: int
    adds: int
    add_batch: int
    commits: int


FULL = Sizes(pending=1_000_000, due=20_000, adds=50, add_batch=1_000, commits=200)
QUICK = Sizes(pending=20_000, due=2_000, adds=10, add_batch=200, commits=20)


def run(quick: bool) -> dict[str, float]:
    sizes = QUICK if quick else FULL
    figures: dict[str, float] = {}
    for label, pending in (("empty", 0), ("1m_pending", sizes.pending)):
        with tempfile.TemporaryDirectory(prefix="croupier-bench-timers-") as tmp:
            data_dir = Path(tmp) / "data"
            trio.run(load_pending, data_dir, pending)
            measured = trio.run(measure, data_dir, sizes)
        for name, value in measured.items():
            figures[f"{name}_{label}"] = value
    figures["pending_timers"] = float(sizes.pending)
    figures["due_timers"] = float(sizes.due)
    return figures


async def load_pending(data_dir: Path, count: int) -> None:
    """``count`` timers due from a day to a year ahead, written in big transactions."""
    async with open_store(data_dir, metrics=new_metrics()) as store:
        rng = random.Random(1)
        now = time.time()
        for first in range(0, count, LOAD_BATCH_ROWS):
            last = min(count, first + LOAD_BATCH_ROWS)
            rows = sorted(
                (now + DAY_SECONDS + rng.random() * YEAR_SECONDS, f"p{i}")
                for i in range(first, last)
            )

            def load(txn: Any, rows: list[tuple[float, str]] = rows) -> None:
                for due, timer_id in rows:
                    put_timer(txn, store, timer_id, TimerRecord(KIND, timer_id, due))

            await store.write(load)
        if count:
            progress(f"{count:,} pending timers written")


async def measure(data_dir: Path, sizes: Sizes) -> dict[str, float]:
    figures: dict[str, float] = {}
    async with open_store(data_dir, metrics=new_metrics()) as store:
        await add_due(store, 1, "first")
    started = time.perf_counter()
    async with open_store(data_dir, metrics=new_metrics()) as store:
        fired = trio.Event()
        service = TimerService(store, wall_clock=time.time)

        async def first(timer: TimerRecord) -> None:
            fired.set()
            await store.write(lambda txn: delete_timer(txn, store, timer.target, timer.due))

        service.register(KIND, first)
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run)
            await fired.wait()
            figures["timers_boot_to_first_fire_s"] = time.perf_counter() - started
            nursery.cancel_scope.cancel()
        figures["timers_add_us"] = add_cost_us(store, sizes)
        figures["timers_add_commit_ms"] = await add_commit_ms(store, sizes)
        figures["timers_fire_per_s"] = await fire_rate(store, sizes)
    return figures


async def add_due(store: Store, count: int, prefix: str) -> None:
    now = time.time()
    records = [TimerRecord(KIND, f"{prefix}{i}", now - 1 - i / 1000) for i in range(count)]

    def write(txn: Any) -> None:
        for record in records:
            put_timer(txn, store, record.target, record)

    await store.write(write)


def add_cost_us(store: Store, sizes: Sizes) -> float:
    """Median microseconds per timer put in a write transaction, over ``adds`` batches
    (aborted, so the index keeps its size)."""
    rng = random.Random(2)
    now = time.time()
    per_timer: list[float] = []
    for batch in range(sizes.adds):
        records = [
            TimerRecord(KIND, f"a{batch}-{i}", now + DAY_SECONDS + rng.random() * YEAR_SECONDS)
            for i in range(sizes.add_batch)
        ]
        txn = store.env.begin(write=True)
        try:
            started = time.perf_counter()
            for record in records:
                put_timer(txn, store, record.target, record)
            per_timer.append((time.perf_counter() - started) / sizes.add_batch * 1e6)
        finally:
            txn.abort()
    return statistics.median(per_timer)


async def add_commit_ms(store: Store, sizes: Sizes) -> float:
    """Median milliseconds to add one timer in its own durable commit, then remove it."""
    rng = random.Random(3)
    now = time.time()
    latencies: list[float] = []
    for i in range(sizes.commits):
        record = TimerRecord(KIND, f"c{i}", now + DAY_SECONDS + rng.random() * YEAR_SECONDS)
        started = time.perf_counter()
        await store.write(partial(put_timer, store=store, timer_id=record.target, record=record))
        latencies.append((time.perf_counter() - started) * 1000)
        await store.write(
            partial(delete_timer, store=store, timer_id=record.target, due=record.due)
        )
    return statistics.median(latencies)


async def fire_rate(store: Store, sizes: Sizes) -> float:
    """Timers fired per second, ``due`` overdue at once, each removed by its handler."""
    await add_due(store, sizes.due, "d")
    done = trio.Event()
    fired = 0
    service = TimerService(store, wall_clock=time.time)

    async def handler(timer: TimerRecord) -> None:
        nonlocal fired
        await store.write(lambda txn: delete_timer(txn, store, timer.target, timer.due))
        fired += 1
        if fired == sizes.due:
            done.set()

    service.register(KIND, handler)
    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        await done.wait()
        elapsed = time.perf_counter() - started
        nursery.cancel_scope.cancel()
    with store.read() as txn:
        cursor = txn.cursor(db=store.db("timers"))
        earliest = TIMER.decode(cursor.value()) if cursor.first() else None
    assert earliest is None or earliest.due > time.time(), "an overdue timer was left unfired"
    return sizes.due / elapsed
