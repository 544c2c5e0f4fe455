"""``croupier bench``: durable throughput and latency of the storage and the economy.

Every figure is measured on a fresh store in a temporary directory, with the same fsync'd
commits a server makes: nothing counts as done before it is durable.

``storage`` compares the group-commit writer (``Store.write``: many requests, one commit
and one fsync) with one LMDB write transaction and one fsync per write, at 1, 100 and
1,000 concurrent writers. Each writer appends its own keys (distinct, increasing per
writer) with a 64-byte value.

``economy`` runs payments end to end through the wallet actors (debit and outbox record
on the sender, then the credit on the receiver, each durable before the next step) with
1,000 concurrent users over 100,000 wallets, then at a paced 5,000 payments per second,
and times leaderboard pages over 1,000,000 wallets. A payment is two wallet mutations,
one on each side; ``mutations_per_s`` counts both. It also measures the storage floor:
the records of the same payments written through the writer with no actors at all.

``games`` belongs to ``bot.bench_games``.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from actors import keys
from actors.accounts import TREASURY, system_add, user_account
from actors.casino import build_casino
from actors.economy import Economy
from actors.integrity import check_store
from actors.records import (
    HISTORY,
    IDEMPOTENCY,
    OUTBOX,
    WALLET,
    HistoryEntry,
    IdempotencyRecord,
    OutboxRecord,
    WalletRecord,
)
from actors.runtime import RuntimeFailure
from bot.server import tune_gc
from limits import Limits
from metrics import new_metrics
from storage import Store, open_store

GUILD = 1
VALUE_BYTES = 64
WRITERS = (1, 100, 1_000)
# Paced payment loads: one the server should sustain, and the target rate.
PACED_PER_S = (1_000, 5_000)
# Large enough that no user runs out of coins during a run of one-coin payments.
BENCH_BALANCE_COINS = 1_000_000
# Rows of one bulk-load commit: big batches load fast, and a batch is one write request.
LOAD_BATCH_ROWS = 100_000
# Wallets are opened long before the run, so nobody's first payment pays for opening.
LOAD_TIME = 1_700_000_000.0
# Payments per write request in the storage floor: a group commit as full as the
# economy's commits get under load (1,000 users), and ten times that, the floor's best
# case (bigger commits share more B-tree pages, at the price of latency).
FLOOR_PAYMENTS_PER_WRITE = (1_000, 10_000)


@dataclass(frozen=True)
class Sizes:
    seconds_per_figure: float
    wallets: int
    users: int
    paced_seconds: float
    leaderboard_wallets: int
    leaderboard_calls: int


FULL = Sizes(
    seconds_per_figure=2.0,
    wallets=100_000,
    users=1_000,
    paced_seconds=3.0,
    leaderboard_wallets=1_000_000,
    leaderboard_calls=200,
)
QUICK = Sizes(
    seconds_per_figure=0.2,
    wallets=5_000,
    users=1_000,
    paced_seconds=0.3,
    leaderboard_wallets=20_000,
    leaderboard_calls=20,
)

Figures = dict[str, float]


def run_bench(suite: str, *, as_json: bool, quick: bool) -> int:
    """Run one suite and print its figures (one JSON object with ``as_json``)."""
    sizes = QUICK if quick else FULL
    thresholds = gc.get_threshold()
    try:
        if suite == "games":
            from bot.bench_games import run

            figures = run(quick)
        elif suite == "discord":
            from bot.bench_discord import run as run_discord

            figures = run_discord(quick)
        elif suite == "api":
            from bot.bench_api import run as run_api

            figures = run_api(quick)
        elif suite == "timers":
            from bot.bench_timers import run as run_timers

            figures = run_timers(quick)
        elif suite == "storage":
            figures = trio.run(bench_storage, sizes)
        elif suite == "economy":
            figures = trio.run(bench_economy, sizes)
        else:
            raise ValueError(
                f"unknown bench suite {suite!r}; "
                "use storage, economy, games, discord, api or timers"
            )
    finally:
        # The suites tune the collector as the server does; give the caller its own back.
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    if as_json:
        print(json.dumps(figures, sort_keys=True))
    else:
        print(f"croupier bench {suite}{' (quick)' if quick else ''}: {NOTES.get(suite, '')}")
        for name, value in figures.items():
            print(f"  {name:<44} {value:>14,.2f}")
    return 0


NOTES = {
    "storage": (
        "durable writes per second; every write is a distinct key appended per writer "
        f"with a {VALUE_BYTES}-byte value, fsync'd before it is acknowledged "
        "(*_one_sequence: all writers append to one increasing key sequence, so a commit "
        "touches few B-tree pages and the figure shows the writer itself)"
    ),
    "economy": (
        "payments end to end through the wallet actors, each durable before it is "
        "acknowledged; a payment is 2 wallet mutations (debit, credit) and "
        "mutations_per_s counts both; latencies are per payment; busy_answers counts "
        "payments answered busy (no reply within the ask deadline, outcome unknown), "
        "which are not throughput; payment_writes_floor_mutations_per_s writes the same "
        "records with no actors, the storage ceiling of one process"
    ),
    "discord": (
        "the real server against the fake Discord in another process, HTTP endpoint then "
        "gateway; acknowledgement latencies run from when an interaction was due to be "
        "sent; a deferral counts as an acknowledgement and must then be followed up; "
        "*_server_answer_*_le are the server's own answer times, as histogram bucket bounds"
    ),
    "api": (
        "a real croupier run under 100 keep-alive HTTP clients in another process: GET of "
        "a member's balance and rank, and PATCH adding a coin with a new Idempotency-Key "
        "each (a durable change); latencies per request as the clients see them"
    ),
    "timers": (
        "the timer service on an empty index and on one of 1,000,000 pending timers: "
        "overdue timers fired per second (each removed by its handler's durable write), "
        "boot to the first firing, and the cost of adding one (in a transaction, and in "
        "its own durable commit)"
    ),
}


def progress(message: str) -> None:
    """A line on stderr, so that ``--json`` output stays one JSON object."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


# --- measuring -------------------------------------------------------------------------


@dataclass
class Run:
    """What a timed run did: how many jobs were acknowledged and how many were answered
    busy (outcome unknown), in how long, and each one's latency either way."""

    done: int
    busy: int
    seconds: float
    latencies: list[float]

    @property
    def per_s(self) -> float:
        """Acknowledged jobs per second; a busy answer is not throughput."""
        return self.done / self.seconds

    def percentile_ms(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return 1_000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def closed_loop(
    workers: int, seconds: float, job: Callable[[int, int], Awaitable[bool]]
) -> Run:
    """``workers`` tasks each run ``job(worker, sequence)`` back to back until the time is
    up; the run lasts until the last job started in time has finished. A job returns
    whether it was acknowledged."""
    latencies: list[float] = []
    acknowledged = 0
    deadline = trio.current_time() + seconds

    async def worker(index: int) -> None:
        nonlocal acknowledged
        sequence = 0
        while trio.current_time() < deadline:
            started = time.perf_counter()
            # Await first and add after: ``x += await f()`` reads x before the await and
            # would lose the other tasks' additions made meanwhile.
            ok = await job(index, sequence)
            acknowledged += ok
            latencies.append(time.perf_counter() - started)
            sequence += 1

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for index in range(workers):
            nursery.start_soon(worker, index)
    seconds_taken = time.perf_counter() - started
    return Run(acknowledged, len(latencies) - acknowledged, seconds_taken, latencies)


async def open_loop(per_s: int, seconds: float, job: Callable[[int], Awaitable[bool]]) -> Run:
    """Start ``job(i)`` at a fixed pace whatever the replies do; each latency runs from
    when the job was due, so a server that falls behind is charged for the wait."""
    total = int(per_s * seconds)
    latencies: list[float] = []
    acknowledged = 0
    start = trio.current_time()

    async def one(index: int, due: float) -> None:
        nonlocal acknowledged
        ok = await job(index)
        acknowledged += ok
        latencies.append(trio.current_time() - due)

    async with trio.open_nursery() as nursery:
        for index in range(total):
            due = start + index / per_s
            await trio.sleep_until(due)
            nursery.start_soon(one, index, due)
    return Run(acknowledged, total - acknowledged, trio.current_time() - start, latencies)


# --- storage ---------------------------------------------------------------------------


def appended_key(writer: int, sequence: int) -> bytes:
    return keys.u64(writer) + keys.u64(sequence)


async def bench_storage(sizes: Sizes) -> Figures:
    figures: Figures = {}
    value = b"v" * VALUE_BYTES
    with tempfile.TemporaryDirectory(prefix="croupier-bench-") as tmp:
        for writers in WRITERS:
            async with open_store(Path(tmp) / f"group-{writers}") as store:
                db = store.db("history")

                async def group_write(
                    writer: int, sequence: int, store: Store = store, db: Any = db
                ) -> bool:
                    key = appended_key(writer, sequence)
                    await store.write(lambda txn: txn.put(key, value, db=db))
                    return True

                run = await closed_loop(writers, sizes.seconds_per_figure, group_write)
                figures[f"writes_per_s_group_commit_{writers}"] = run.per_s
            progress(f"group commit, {writers} writers: {run.per_s:,.0f} writes/s")
            async with open_store(Path(tmp) / f"sequence-{writers}") as store:
                db, sequence = store.db("history"), itertools.count()

                async def sequence_write(
                    writer: int,
                    _: int,
                    store: Store = store,
                    db: Any = db,
                    sequence: itertools.count[int] = sequence,
                ) -> bool:
                    key = next(sequence).to_bytes(8, "big")
                    await store.write(lambda txn: txn.put(key, value, db=db))
                    return True

                run = await closed_loop(writers, sizes.seconds_per_figure, sequence_write)
                figures[f"writes_per_s_group_commit_{writers}_one_sequence"] = run.per_s
            progress(f"group commit, {writers} writers, one sequence: {run.per_s:,.0f} writes/s")
            async with open_store(Path(tmp) / f"single-{writers}") as store:
                env, db = store.env, store.db("history")

                def commit_one(key: bytes, env: Any = env, db: Any = db) -> None:
                    with env.begin(write=True) as txn:
                        txn.put(key, value, db=db)

                async def single_write(writer: int, sequence: int) -> bool:
                    await trio.to_thread.run_sync(commit_one, appended_key(writer, sequence))
                    return True

                run = await closed_loop(writers, sizes.seconds_per_figure, single_write)
                figures[f"writes_per_s_per_write_commit_{writers}"] = run.per_s
            progress(f"one commit per write, {writers} writers: {run.per_s:,.0f} writes/s")
    return figures


# --- economy ---------------------------------------------------------------------------


@asynccontextmanager
async def running_economy(data_dir: Path, limits: Limits) -> AsyncIterator[Economy]:
    """The domain wired and booted as the server does it; the bench drives its economy."""
    metrics = new_metrics()
    async with (
        open_store(data_dir, limits=limits, metrics=metrics) as store,
        trio.open_nursery() as nursery,
    ):
        casino = build_casino(store, metrics=metrics, wall_clock=time.time)
        await casino.boot(nursery)
        # The server tunes the garbage collector right after boot; so does the bench.
        tune_gc()
        try:
            yield casino.economy
        finally:
            await casino.actors.close()
            nursery.cancel_scope.cancel()


def wallet_rows(
    users: range, balance_of: Callable[[int], int]
) -> Iterator[tuple[int, int, bytes, bytes]]:
    """(user, balance, wallet value, opening history value) for each user, as a wallet
    opened by the treasury would have written them."""
    for user in users:
        balance = balance_of(user)
        record = WalletRecord(balance=balance, created_at=LOAD_TIME, history_seq=1)
        opening = HistoryEntry(
            f"open:{GUILD}:{user}", balance, TREASURY, "opening balance", LOAD_TIME, balance
        )
        yield user, balance, WALLET.encode(record), HISTORY.encode(opening)


async def load_wallets(store: Store, count: int, balance_of: Callable[[int], int]) -> None:
    """Open wallets 1..count directly in the store, in big commits: wallet, opening
    history entry, leaderboard entry, and the treasury debit that pays for them."""
    db_wallets, db_history = store.db("wallets"), store.db("history")
    db_board, db_system = store.db("leaderboard"), store.db("system")
    for first in range(1, count + 1, LOAD_BATCH_ROWS):
        rows = list(wallet_rows(range(first, min(count + 1, first + LOAD_BATCH_ROWS)), balance_of))
        board = sorted(keys.leaderboard_key(GUILD, balance, user) for user, balance, _, _ in rows)

        def load(
            txn: Any, rows: list[tuple[int, int, bytes, bytes]] = rows, board: list[bytes] = board
        ) -> None:
            # Wallet and history keys grow with the user id, so they append in order.
            txn.cursor(db=db_wallets).putmulti(
                ((keys.wallet_key(GUILD, u), w) for u, _, w, _ in rows), append=True
            )
            txn.cursor(db=db_history).putmulti(
                ((keys.history_key(GUILD, u, 0), h) for u, _, _, h in rows), append=True
            )
            txn.cursor(db=db_board).putmulti((key, b"") for key in board)
            system_add(txn, db_system, GUILD, TREASURY, -sum(b for _, b, _, _ in rows))

        await store.write(load)


async def bench_economy(sizes: Sizes) -> Figures:
    figures: Figures = {
        "wallets": sizes.wallets,
        "users": sizes.users,
        "leaderboard_wallets": sizes.leaderboard_wallets,
    }
    limits = Limits()
    with tempfile.TemporaryDirectory(prefix="croupier-bench-") as tmp:
        async with running_economy(Path(tmp) / "pay", limits) as economy:
            await load_wallets(economy.store, sizes.wallets, lambda user: BENCH_BALANCE_COINS)
            progress(f"opened {sizes.wallets:,} wallets")
            figures.update(await bench_payments(economy, sizes))
            figures["integrity_check_s_100k_wallets"] = await integrity_check_s(economy.store)
        async with running_economy(Path(tmp) / "floor", limits) as economy:
            await load_wallets(economy.store, sizes.wallets, lambda user: BENCH_BALANCE_COINS)
            wallets = {
                user: WalletRecord(BENCH_BALANCE_COINS, created_at=LOAD_TIME, history_seq=1)
                for user in range(1, sizes.wallets + 1)
            }
            for per_write in FLOOR_PAYMENTS_PER_WRITE:
                figures.update(await bench_payment_writes(economy.store, sizes, wallets, per_write))
            await integrity_check_s(economy.store)
        async with running_economy(Path(tmp) / "board", limits) as economy:
            rng = random.Random(1)
            await load_wallets(
                economy.store, sizes.leaderboard_wallets, lambda user: rng.randrange(1, 10**9)
            )
            progress(f"opened {sizes.leaderboard_wallets:,} wallets for the leaderboard")
            figures.update(bench_leaderboard(economy, sizes))
            figures["integrity_check_s_1m_wallets"] = await integrity_check_s(economy.store)
    return figures


async def integrity_check_s(store: Store) -> float:
    """Run the integrity check (the bench's stores must pass it); the seconds it took."""
    report = await trio.to_thread.run_sync(check_store, store)
    if not report.ok:
        raise AssertionError(f"the bench left a store that fails the check:\n{report.text()}")
    return report.duration_seconds


async def bench_payments(economy: Economy, sizes: Sizes) -> Figures:
    rng = random.Random(0)
    users = range(1, sizes.users + 1)

    async def pay(user: int, key: str, among: int = sizes.wallets) -> bool:
        """One payment to a random wallet among the first ``among``; False when the
        server answered busy (a reply took longer than the ask deadline), which an
        overloaded server does."""
        to = rng.randrange(1, among + 1)
        to = to if to != user else user % sizes.wallets + 1
        try:
            outcome = await economy.pay(GUILD, user, to, 1, key)
        except RuntimeFailure:
            return False
        assert outcome.status == "credited", outcome
        return True

    # Every user pays once first, so the timed run starts with their wallets resident
    # (a busy server's active users are); receivers stay random across all wallets.
    async with trio.open_nursery() as nursery:
        for user in users:
            nursery.start_soon(pay, user, f"warm:{user}")

    async def closed(worker: int, sequence: int) -> bool:
        return await pay(users[worker], f"c:{worker}:{sequence}")

    run = await closed_loop(sizes.users, sizes.seconds_per_figure * 2, closed)
    progress(f"{sizes.users} users: {run.per_s:,.0f} payments/s")
    figures = {
        "pays_per_s_1000_users": run.per_s,
        "mutations_per_s_1000_users": 2 * run.per_s,
        "p50_ms_1000_users": run.percentile_ms(0.50),
        "p99_ms_1000_users": run.percentile_ms(0.99),
        "busy_answers_1000_users": run.busy,
    }

    async def among_users(worker: int, sequence: int) -> bool:
        return await pay(users[worker], f"r:{worker}:{sequence}", among=sizes.users)

    # The same users paying each other only: every wallet stays resident, so this shows
    # what activating cold receivers costs in the figure above.
    run = await closed_loop(sizes.users, sizes.seconds_per_figure * 2, among_users)
    progress(f"{sizes.users} users paying each other: {run.per_s:,.0f} payments/s")
    figures["mutations_per_s_1000_users_resident"] = 2 * run.per_s
    figures["p99_ms_1000_users_resident"] = run.percentile_ms(0.99)

    for per_s in PACED_PER_S:

        async def paced(index: int, per_s: int = per_s) -> bool:
            return await pay(users[index % len(users)], f"o{per_s}:{index}")

        run = await open_loop(per_s, sizes.paced_seconds, paced)
        progress(f"paced at {per_s}/s: p99 {run.percentile_ms(0.99):.1f} ms")
        figures[f"p50_ms_at_{per_s}_per_s"] = run.percentile_ms(0.50)
        figures[f"p99_ms_at_{per_s}_per_s"] = run.percentile_ms(0.99)
        figures[f"busy_answers_at_{per_s}_per_s"] = run.busy
    return figures


async def bench_payment_writes(
    store: Store, sizes: Sizes, wallets: dict[int, WalletRecord], per_write: int
) -> Figures:
    """The storage floor of a payment: every record the two wallets write for one payment
    (history entries, outbox record written, read and deleted, idempotency record, applied
    marker, both wallet records, both leaderboard moves), with the real keys and codecs,
    through the real group-commit writer, ``per_write`` payments per write request, and
    no actors: the trio thread only submits. No design that writes these records in one
    process settles payments faster than this. ``wallets`` is what the store holds, kept
    in step."""
    rng = random.Random(per_write)
    db = store.db
    db_wallets, db_history, db_board = db("wallets"), db("history"), db("leaderboard")
    db_outbox, db_applied, db_idem = db("outbox"), db("applied"), db("idempotency")

    def payments(txn: Any, plan: list[tuple[int, int, str]]) -> dict[int, WalletRecord]:
        """Write the planned payments; the wallets they change, applied by the caller
        once durable (a write request may run more than once)."""
        changed: dict[int, WalletRecord] = {}
        now = time.time()

        def side(user: int, delta: int, party: int, transfer_id: str) -> int:
            record = changed.get(user)
            if record is None:
                record = changed[user] = dataclasses.replace(wallets[user])
            old_balance = record.balance
            record.balance += delta
            entry = HistoryEntry(transfer_id, delta, user_account(party), "", now, record.balance)
            history_key = keys.history_key(GUILD, user, record.history_seq)
            txn.put(history_key, HISTORY.encode(entry), db=db_history)
            record.history_seq += 1
            txn.put(keys.wallet_key(GUILD, user), WALLET.encode(record), db=db_wallets)
            txn.delete(keys.leaderboard_key(GUILD, old_balance, user), db=db_board)
            txn.put(keys.leaderboard_key(GUILD, record.balance, user), b"", db=db_board)
            return record.balance

        for sender, receiver, key in plan:
            transfer_id = f"pay:{GUILD}:{sender}:{key}"
            tid = transfer_id.encode()
            # The sender's commit: debit, outbox record, idempotency record.
            balance = side(sender, -1, receiver, transfer_id)
            outbox = OutboxRecord(
                transfer_id, GUILD, user_account(sender), user_account(receiver), 1, "", now
            )
            txn.put(tid, OUTBOX.encode(outbox), db=db_outbox)
            # The stored result has PayResult's fields.
            result = {
                "transfer_id": transfer_id,
                "to_user": receiver,
                "amount": 1,
                "balance": balance,
            }
            remembered = IdempotencyRecord(op="Pay", result=result, at=now)
            idem_key = keys.idempotency_key(GUILD, sender, key)
            txn.put(idem_key, IDEMPOTENCY.encode(remembered), db=db_idem)
            # The receiver's commit: read the outbox record, credit, mark it applied.
            OUTBOX.decode(txn.get(tid, db=db_outbox))
            side(receiver, 1, sender, transfer_id)
            txn.delete(tid, db=db_outbox)
            txn.put(keys.applied_key(GUILD, receiver, tid), b"credited", db=db_applied)
        return changed

    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < sizes.seconds_per_figure:
        plan = []
        for number in range(done, done + per_write):
            sender = 1 + number % sizes.users
            receiver = rng.randrange(1, sizes.wallets + 1)
            receiver = receiver if receiver != sender else sender % sizes.wallets + 1
            plan.append((sender, receiver, f"floor{per_write}:{number}"))
        wallets.update(await store.write(functools.partial(payments, plan=plan)))
        done += len(plan)
    per_s = done / (time.perf_counter() - started)
    progress(f"storage floor, {per_write:,} per write: {per_s:,.0f} payments/s, no actors")
    suffix = "" if per_write == FLOOR_PAYMENTS_PER_WRITE[0] else f"_{per_write // 1000}k_per_write"
    return {f"payment_writes_floor_mutations_per_s{suffix}": 2 * per_s}


def bench_leaderboard(economy: Economy, sizes: Sizes) -> Figures:
    deepest = economy.limits.leaderboard_pages_max

    def median_ms(page: int) -> float:
        times = []
        for _ in range(sizes.leaderboard_calls):
            started = time.perf_counter()
            shown = economy.leaderboard(GUILD, page)
            times.append(time.perf_counter() - started)
            assert len(shown.rows) == economy.limits.leaderboard_page_entries_max
        return 1_000 * statistics.median(times)

    return {
        "leaderboard_page_ms_1m_wallets": median_ms(1),
        f"leaderboard_page_{deepest}_ms_1m_wallets": median_ms(deepest),
    }
