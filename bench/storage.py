"""``croupier bench storage``: the group-commit writer against one commit per write.

``Store.write`` (many requests, one commit and one fsync) is compared with one LMDB write
transaction and one fsync per write, at 1, 100 and 1,000 concurrent writers. Each writer
appends its own keys (distinct, increasing per writer) with a 64-byte value; the
``*_one_sequence`` figures have all writers append to one increasing key sequence, so a
commit touches few B-tree pages and the figure shows the writer itself.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import trio

from actors import keys
from bench.measure import Figures, closed_loop, progress
from storage import Store, open_store

VALUE_BYTES = 64
WRITERS = (1, 100, 1_000)
SECONDS_PER_FIGURE = 2.0
SECONDS_PER_FIGURE_QUICK = 0.2


def run(quick: bool) -> Figures:
    figures: Figures = trio.run(
        bench_storage, SECONDS_PER_FIGURE_QUICK if quick else SECONDS_PER_FIGURE
    )
    return figures


def appended_key(writer: int, sequence: int) -> bytes:
    return keys.u64(writer) + keys.u64(sequence)


async def bench_storage(seconds: float) -> Figures:
    figures: Figures = {}
    with tempfile.TemporaryDirectory(prefix="croupier-bench-") as tmp:
        for writers in WRITERS:
            async with open_store(Path(tmp) / f"group-{writers}") as store:
                per_s = await group_commit_per_s(store, writers, seconds)
                figures[f"writes_per_s_group_commit_{writers}"] = per_s
            progress(f"group commit, {writers} writers: {per_s:,.0f} writes/s")
            async with open_store(Path(tmp) / f"sequence-{writers}") as store:
                per_s = await one_sequence_per_s(store, writers, seconds)
                figures[f"writes_per_s_group_commit_{writers}_one_sequence"] = per_s
            progress(f"group commit, {writers} writers, one sequence: {per_s:,.0f} writes/s")
            async with open_store(Path(tmp) / f"single-{writers}") as store:
                per_s = await commit_per_write_per_s(store, writers, seconds)
                figures[f"writes_per_s_per_write_commit_{writers}"] = per_s
            progress(f"one commit per write, {writers} writers: {per_s:,.0f} writes/s")
    return figures


async def group_commit_per_s(store: Store, writers: int, seconds: float) -> float:
    db, value = store.db("history"), b"v" * VALUE_BYTES

    async def write(writer: int, sequence: int) -> bool:
        key = appended_key(writer, sequence)
        await store.write(lambda txn: txn.put(key, value, db=db))
        return True

    return (await closed_loop(writers, seconds, write)).per_s


async def one_sequence_per_s(store: Store, writers: int, seconds: float) -> float:
    db, value, sequence = store.db("history"), b"v" * VALUE_BYTES, itertools.count()

    async def write(writer: int, _: int) -> bool:
        key = next(sequence).to_bytes(8, "big")
        await store.write(lambda txn: txn.put(key, value, db=db))
        return True

    return (await closed_loop(writers, seconds, write)).per_s


async def commit_per_write_per_s(store: Store, writers: int, seconds: float) -> float:
    env, db, value = store.env, store.db("history"), b"v" * VALUE_BYTES

    def commit_one(key: bytes) -> None:
        with env.begin(write=True) as txn:
            txn.put(key, value, db=db)

    async def write(writer: int, sequence: int) -> bool:
        await trio.to_thread.run_sync(commit_one, appended_key(writer, sequence))
        return True

    return (await closed_loop(writers, seconds, write)).per_s
