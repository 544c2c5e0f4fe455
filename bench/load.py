"""The domain the in-process suites run, and stores filled directly for them, in big
commits, with the real keys and codecs: wallets opened by the treasury, as many as a
benchmark needs, long before it runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from actors import HistoryEntry, RunningCasino, keys, run_casino, tune_gc
from actors.accounts import TREASURY, system_add
from actors.records import HISTORY, WALLET, WalletRecord
from storage import Store

GUILD = 1
# Rows of one bulk-load commit: big batches load fast, and a batch is one write request.
LOAD_BATCH_ROWS = 100_000
# Wallets are opened long before the run, so nobody's first payment pays for opening.
LOAD_TIME = 1_700_000_000.0


@asynccontextmanager
async def booted(data_dir: Path) -> AsyncIterator[RunningCasino]:
    """The domain run as the server runs it: store (lock and migrations), actor system,
    delivery of transfers left in flight, recovery of games, timers."""
    async with run_casino(data_dir) as running:
        # The server tunes the garbage collector right after boot; so does the bench.
        tune_gc()
        yield running


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
