"""The one integrity check, through `croupier check` and `croupier backup verify`, on real
stores: clean with live blackjack games, and failing on a planted fault of each kind."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lmdb
import pytest
import trio
import trio.testing

from actors import ShopItem, TimerRecord, check_store, keys
from actors.games import GAME, GAME_TIMER_KIND, LIVE
from actors.records import OUTBOX, SHOP_ITEM, WALLET, OutboxRecord
from actors.timer_records import TIMER
from bench.load import load_wallets
from bot.cli import main
from storage import open_store, packb
from tests.economy_fixtures import T0, running_games
from tests.support.server_process import CROUPIER

G = 1
PLAYERS = range(42, 52)


async def store_with_live_games(data: Path) -> list[str]:
    """A store where several players hold an open blackjack hand; their game ids."""
    async with running_games(data) as casino:
        live: list[str] = []
        for user in PLAYERS:
            view = await casino.games.start_blackjack(G, user, 10, f"{user}001")
            if view.phase == LIVE:
                live.append(view.game_id)
        report = casino.check()
        assert report.ok, report.text()
    # A natural settles at the deal, about one hand in twenty: ten players leave some open.
    assert len(live) >= 2, live
    return live


def croupier(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROUPIER_")}
    env["CROUPIER_DATA_DIR"] = str(data)
    return subprocess.run(
        [CROUPIER, *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_check_and_backup_verify_pass_with_live_blackjack_games(tmp_path: Path) -> None:
    """Open hands hold escrow: the real CLI counts it, verifies the backup and restores it."""
    data = tmp_path / "data"
    live = await store_with_live_games(data)
    checked = croupier(data, "check", "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    report = json.loads(checked.stdout)
    assert report["ok"] and report["figures"]["games_live"] == len(live)
    assert report["figures"]["escrow_coins"] == 10 * len(live)
    assert report["counts"]["live_game_has_timer"] == 0

    created = croupier(data, "backup", "create")
    assert created.returncode == 0, created.stderr
    verified = croupier(data, "backup", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.strip().endswith(": ok")
    listed = croupier(data, "backup", "list")
    assert " ok " in listed.stdout, listed.stdout
    restored = croupier(data, "backup", "restore", "latest", "--yes")
    assert restored.returncode == 0, restored.stderr
    again = croupier(data, "check")
    assert again.returncode == 0 and "integrity: OK" in again.stdout, again.stdout


# --- planted faults --------------------------------------------------------------------


class Planted:
    """Direct writes to a stopped store, as damage would make them."""

    def __init__(self, data: Path, live: list[str]) -> None:
        self.env = lmdb.open(str(data / "lmdb"), max_dbs=64)
        self.live = live
        # Opening a sub-database takes a write transaction of its own, so every one is
        # opened before the planting transaction starts.
        names = ("wallets", "leaderboard", "outbox", "inventory", "shop", "games", "timers")
        self.dbs = {name: self.env.open_db(name.encode()) for name in names}

    def db(self, name: str) -> Any:
        return self.dbs[name]

    def set_balance(self, txn: Any, user: int, balance: int, *, index: bool) -> None:
        key = keys.wallet_key(G, user)
        record = WALLET.decode(txn.get(key, db=self.db("wallets")))
        txn.put(
            key, WALLET.encode(dataclasses.replace(record, balance=balance)), db=self.db("wallets")
        )
        if index:
            leaderboard = self.db("leaderboard")
            assert txn.delete(keys.leaderboard_key(G, record.balance, user), db=leaderboard)
            txn.put(keys.leaderboard_key(G, balance, user), b"", db=leaderboard)

    def live_game(self, txn: Any) -> Any:
        return GAME.decode(txn.get(keys.game_key(self.live[0]), db=self.db("games")))


def money_off_by_one(p: Planted, txn: Any) -> None:
    balance = WALLET.decode(txn.get(keys.wallet_key(G, 42), db=p.db("wallets"))).balance
    p.set_balance(txn, 42, balance + 1, index=True)


def negative_balance(p: Planted, txn: Any) -> None:
    p.set_balance(txn, 43, -1, index=False)


def outbox_pointing_nowhere(p: Planted, txn: Any) -> None:
    record = OutboxRecord("pay:ghost", G, "user:42", "user:43", 1, "pay", T0, source_ref=999)
    txn.put(b"pay:ghost", OUTBOX.encode(record), db=p.db("outbox"))


def leaderboard_mismatch(p: Planted, txn: Any) -> None:
    balance = WALLET.decode(txn.get(keys.wallet_key(G, 44), db=p.db("wallets"))).balance
    assert txn.delete(keys.leaderboard_key(G, balance, 44), db=p.db("leaderboard"))


def inventory_without_item(p: Planted, txn: Any) -> None:
    txn.put(keys.inventory_key(G, 42, 77), packb(1), db=p.db("inventory"))


def negative_stock(p: Planted, txn: Any) -> None:
    item = ShopItem(item_id=5, name="hat", price=10, stock=-1)
    txn.put(keys.item_key(G, 5), SHOP_ITEM.encode(item), db=p.db("shop"))


def live_game_without_timer(p: Planted, txn: Any) -> None:
    game = p.live_game(txn)
    assert txn.delete(keys.timer_key(game.deadline, game.game_id), db=p.db("timers"))


def timer_without_live_owner(p: Planted, txn: Any) -> None:
    timer = TimerRecord(GAME_TIMER_KIND, "feedfacecafe", T0 + 60)
    txn.put(keys.timer_key(timer.due, timer.target), TIMER.encode(timer), db=p.db("timers"))


def escrow_mismatch(p: Planted, txn: Any) -> None:
    game = p.live_game(txn)
    more = dataclasses.replace(game, escrow=game.escrow + 1)
    txn.put(keys.game_key(game.game_id), GAME.encode(more), db=p.db("games"))


def unreadable_record(p: Planted, txn: Any) -> None:
    txn.put(keys.game_key("deadbeef0000"), b"\xc1 not msgpack", db=p.db("games"))


FAULTS: dict[str, tuple[Callable[[Planted, Any], None], str]] = {
    "money off by one": (money_off_by_one, "money_sums_to_zero"),
    "negative balance": (negative_balance, "no_negative_balance"),
    "outbox pointing nowhere": (outbox_pointing_nowhere, "outbox_refers_to_transfer"),
    "leaderboard mismatch": (leaderboard_mismatch, "leaderboard_matches"),
    "inventory without item": (inventory_without_item, "inventory_has_item"),
    "negative stock": (negative_stock, "stock_not_negative"),
    "live game without its deadline timer": (live_game_without_timer, "live_game_has_timer"),
    "timer without a live owner": (timer_without_live_owner, "timer_has_live_owner"),
    "escrow mismatch": (escrow_mismatch, "escrow_matches_games"),
    "unreadable record": (unreadable_record, "records_readable"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_check_and_backup_verify_fail_on_a_planted_fault(
    fault: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each kind of damage fails `croupier check` and `backup verify`, naming its check."""
    plant, check = FAULTS[fault]
    data = tmp_path / "data"
    live = await store_with_live_games(data)
    planted = Planted(data, live)
    with planted.env.begin(write=True) as txn:
        plant(planted, txn)
    planted.env.close()
    for name in [k for k in os.environ if k.startswith("CROUPIER_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CROUPIER_DATA_DIR", str(data))

    assert main(["check", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert not report["ok"] and report["counts"][check] >= 1, report
    assert main(["backup", "create"]) == 0
    capsys.readouterr()
    assert main(["backup", "verify"]) == 1
    out = capsys.readouterr().out
    assert "the integrity check found violations" in out and check in out, out


async def test_a_scan_in_a_worker_thread_ends_soon_after_its_caller_is_cancelled(
    tmp_path: Path,
) -> None:
    """A server asked to stop does not wait for a whole-store scan to finish."""
    async with open_store(tmp_path / "data") as store:
        await load_wallets(store, 30_000, lambda user: 100)
        finished: list[object] = []

        async def scan(scope: trio.CancelScope) -> None:
            with scope:
                finished.append(await trio.to_thread.run_sync(check_store, store))

        scope = trio.CancelScope()
        # The scan's thread waits on the map gate, so it is cancelled mid-way for sure.
        store.map_gate.acquire()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(scan, scope)
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()
            store.map_gate.release()
        assert scope.cancelled_caught and finished == []
        assert store.map_gate.acquire(blocking=False)
        store.map_gate.release()
        assert check_store(store).ok
