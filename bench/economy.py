"""``croupier bench economy``: payments end to end through the wallet actors.

Payments run through the wallet actors (debit and outbox record on the sender, then the
credit on the receiver, each durable before the next step) with 1,000 concurrent users
over 100,000 wallets, then at a paced 1,000 and 5,000 payments per second, and
leaderboard pages are timed over 1,000,000 wallets. A payment is two wallet mutations,
one on each side; ``mutations_per_s`` counts both. The storage floor writes the same
payments with the wallet's own plan functions through the writer, with no actors at all.
"""

from __future__ import annotations

import functools
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from actors import Economy, RuntimeFailure, ScopeSettings, check_store
from actors.records import OUTBOX, WalletRecord
from actors.wallet import Credit, Pay
from actors.wallet_plans import WalletId, apply_plans, plan_credit, plan_pay
from bench.load import GUILD, LOAD_TIME, booted, load_wallets
from bench.measure import Figures, Run, closed_loop, open_loop, progress
from storage import Store

# Paced payment loads: one the server should sustain, and the target rate.
PACED_PER_S = (1_000, 5_000)
# Large enough that no user runs out of coins during a run of one-coin payments.
BENCH_BALANCE_COINS = 1_000_000
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


def run(quick: bool) -> Figures:
    figures: Figures = trio.run(bench_economy, QUICK if quick else FULL)
    return figures


@asynccontextmanager
async def running_economy(data_dir: Path) -> AsyncIterator[Economy]:
    """The domain run as the server runs it; the bench drives its economy."""
    async with booted(data_dir) as running:
        yield running.casino.economy


async def bench_economy(sizes: Sizes) -> Figures:
    figures: Figures = {
        "wallets": sizes.wallets,
        "users": sizes.users,
        "leaderboard_wallets": sizes.leaderboard_wallets,
    }
    with tempfile.TemporaryDirectory(prefix="croupier-bench-") as tmp:
        async with running_economy(Path(tmp) / "pay") as economy:
            await load_wallets(economy.store, sizes.wallets, lambda user: BENCH_BALANCE_COINS)
            progress(f"opened {sizes.wallets:,} wallets")
            figures.update(await bench_payments(economy, sizes))
            figures["integrity_check_s_100k_wallets"] = await integrity_check_s(economy.store)
        async with running_economy(Path(tmp) / "floor") as economy:
            await load_wallets(economy.store, sizes.wallets, lambda user: BENCH_BALANCE_COINS)
            settings = economy.settings(GUILD)
            wallets = {
                user: WalletRecord(BENCH_BALANCE_COINS, created_at=LOAD_TIME, history_seq=1)
                for user in range(1, sizes.wallets + 1)
            }
            for per_write in FLOOR_PAYMENTS_PER_WRITE:
                figures.update(
                    await bench_payment_writes(economy.store, settings, sizes, wallets, per_write)
                )
            await integrity_check_s(economy.store)
        async with running_economy(Path(tmp) / "board") as economy:
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


@dataclass
class Payments:
    """One-coin payments from the first ``sizes.users`` users to random wallets."""

    economy: Economy
    sizes: Sizes
    rng: random.Random

    async def pay(self, user: int, key: str, among: int | None = None) -> bool:
        """One payment to a random wallet among the first ``among`` (all by default);
        False when the server answered busy (a reply took longer than the ask deadline),
        which an overloaded server does."""
        wallets = self.sizes.wallets
        to = self.rng.randrange(1, (among or wallets) + 1)
        to = to if to != user else user % wallets + 1
        try:
            outcome = await self.economy.pay(GUILD, user, to, 1, key)
        except RuntimeFailure:
            return False
        assert outcome.status == "credited", outcome
        return True

    async def closed(self, prefix: str, among: int | None = None) -> Run:
        """Every user pays back to back for twice the figure's time."""

        async def job(worker: int, sequence: int) -> bool:
            return await self.pay(worker + 1, f"{prefix}:{worker}:{sequence}", among)

        return await closed_loop(self.sizes.users, self.sizes.seconds_per_figure * 2, job)

    async def paced(self, per_s: int) -> Run:
        """The users pay in turn at ``per_s`` payments a second."""

        async def job(index: int) -> bool:
            return await self.pay(1 + index % self.sizes.users, f"o{per_s}:{index}")

        return await open_loop(per_s, self.sizes.paced_seconds, job)


async def bench_payments(economy: Economy, sizes: Sizes) -> Figures:
    payments = Payments(economy, sizes, random.Random(0))
    # Every user pays once first, so the timed run starts with their wallets resident
    # (a busy server's active users are); receivers stay random across all wallets.
    async with trio.open_nursery() as nursery:
        for user in range(1, sizes.users + 1):
            nursery.start_soon(payments.pay, user, f"warm:{user}")
    run = await payments.closed("c")
    progress(f"{sizes.users} users: {run.per_s:,.0f} payments/s")
    figures = {
        "pays_per_s_1000_users": run.per_s,
        "mutations_per_s_1000_users": 2 * run.per_s,
        "p50_ms_1000_users": run.percentile_ms(0.50),
        "p99_ms_1000_users": run.percentile_ms(0.99),
        "busy_answers_1000_users": run.busy,
    }
    # The same users paying each other only: every wallet stays resident, so this shows
    # what activating cold receivers costs in the figure above.
    run = await payments.closed("r", among=sizes.users)
    progress(f"{sizes.users} users paying each other: {run.per_s:,.0f} payments/s")
    figures["mutations_per_s_1000_users_resident"] = 2 * run.per_s
    figures["p99_ms_1000_users_resident"] = run.percentile_ms(0.99)
    for per_s in PACED_PER_S:
        run = await payments.paced(per_s)
        progress(f"paced at {per_s}/s: p99 {run.percentile_ms(0.99):.1f} ms")
        figures[f"p50_ms_at_{per_s}_per_s"] = run.percentile_ms(0.50)
        figures[f"p99_ms_at_{per_s}_per_s"] = run.percentile_ms(0.99)
        figures[f"busy_answers_at_{per_s}_per_s"] = run.busy
    return figures


def _write_payments(
    txn: Any,
    store: Store,
    settings: ScopeSettings,
    wallets: dict[int, WalletRecord],
    payments: list[tuple[int, int, str]],
) -> dict[int, WalletRecord]:
    """Write the payments through the wallet's own plan functions and ``apply_plans``:
    for each, the sender's plan (debit, history, outbox record, stored answer), then the
    receiver's plan from the outbox record read back (credit, history, applied marker,
    the outbox record deleted). The wallets they change are returned, applied by the
    caller once durable (a write request may run more than once)."""
    changed: dict[int, WalletRecord] = {}
    db_outbox = store.db("outbox")
    now = time.time()

    def record(user: int) -> WalletRecord:
        return changed.get(user) or wallets[user]

    for sender, receiver, key in payments:
        payer, payee = WalletId(GUILD, sender), WalletId(GUILD, receiver)
        before = record(sender)
        paid = plan_pay(payer, before, Pay(key, receiver, 1, ""), settings, now)
        # A wallet's leaderboard entry is at the balance of its stored record.
        apply_plans(txn, store, payer, [paid], before.balance)
        changed[sender] = paid.record
        transfer_id = paid.result.transfer_id
        outbox = OUTBOX.decode(txn.get(transfer_id.encode(), db=db_outbox))
        before = record(receiver)
        credit = plan_credit(payee, before, Credit(transfer_id), settings, now, outbox)
        assert credit.result.status == "credited", credit.result
        apply_plans(txn, store, payee, [credit], before.balance)
        changed[receiver] = credit.record
    return changed


async def bench_payment_writes(
    store: Store,
    settings: ScopeSettings,
    sizes: Sizes,
    wallets: dict[int, WalletRecord],
    per_write: int,
) -> Figures:
    """The storage floor of a payment: every record the two wallets write for one payment,
    planned by the wallet's own functions and written by its ``apply_plans``, through the
    real group-commit writer, ``per_write`` payments per write request, and no actors:
    the plans are made inside the write request, so the trio thread only submits. No
    design that writes these records in one process settles payments faster than this.
    ``wallets`` is what the store holds, kept in step."""
    rng = random.Random(per_write)
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < sizes.seconds_per_figure:
        payments = []
        for number in range(done, done + per_write):
            sender = 1 + number % sizes.users
            receiver = rng.randrange(1, sizes.wallets + 1)
            receiver = receiver if receiver != sender else sender % sizes.wallets + 1
            payments.append((sender, receiver, f"floor{per_write}:{number}"))
        write = functools.partial(
            _write_payments, store=store, settings=settings, wallets=wallets, payments=payments
        )
        wallets.update(await store.write(write))
        done += len(payments)
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
