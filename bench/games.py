"""``croupier bench games``: game throughput with 1,000 players, and boot time over a store
of 100,000 live games.

``games_per_s_1000_players`` counts instant games (coinflip, dice, slots and roulette in
turn; stake, outcome and payout in one durable commit) settled per second while 1,000
players each play back to back. ``blackjack_rounds_per_s_1000_players`` counts blackjack
rounds, each started and then stood until settled (the deal, the move, the settlement and
the payout's delivery are each durable), under the same load. Players open their wallets
before either timed run.

``boot_to_ready_s_100k_games`` is the time from opening a store that holds 100,000 live,
young blackjack games to being ready, in the server's boot order: instance lock, store and
migrations, actor system, delivery of transfers left in flight, recovery of games, timers.
Recovery is lazy: it reads the live-game index and refunds only games older than the
recovery window, so none of these young games is loaded; ``boot_recovery_refunded_games``
must be 0. The games are started through the engine, one per new player, until 100,000
are live (a natural settles at the deal), so the store is what a server writes; it passes
the integrity check before the boot is timed. Its pages are in the page cache by then, as
after a restart of the process.

``boot_to_first_reply_s_1m_settled_games`` starts a real ``croupier console --json``
process on a store holding 1,000,000 settled games and 1,000,000 wallets and times it
from the spawn to its first reply (a ``/balance``), interpreter start and imports
included: the median of three starts. The store is written directly in big LMDB
transactions with the real keys and codecs: each wallet opened by the treasury, and one
settled coinflip per player, resolved by the real rules and booked (the player's net in
the wallet, the house's side in the house account), so it passes the integrity check.
``boot_to_first_reply_s_empty_store`` is the same on an empty store, the floor of
start-up itself on the machine at that moment.
``integrity_background_scan_s_1m_settled_games`` is the time from the spawn until
``/readyz`` shows the background scan's result, which must be ok.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import trio

from actors import Casino, check_store, keys
from actors.accounts import HOUSE, TREASURY, system_add
from actors.games import GAME, GameRecord, rules, settled_instant
from bench.load import LOAD_BATCH_ROWS, LOAD_TIME, booted, load_wallets
from bench.measure import free_port, progress
from storage import Store, open_store

GUILD = 1
STAKE_COINS = 1
# Enough that no player runs out of coins in a run of one-coin games.
STARTING_BALANCE_COINS = 10_000
INSTANT_GAMES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("coinflip", {"choice": "heads"}),
    ("dice", {"bet": "over"}),
    ("slots", {}),
    ("roulette", {"bet": "red"}),
)
# Filling the store keeps this many games starting at once, as many as the throughput
# runs have players; more tasks would only cost memory.
STARTS_IN_FLIGHT_MAX = 1_000


# The settled games of the first-reply store are resolved from this many seed sets, in
# turn: every record is a real game, and the rules run a few hundred times, not a million.
SETTLED_OUTCOMES_DISTINCT = 256
# The opening balance of each wallet of the first-reply store, before its one game.
SETTLED_OPENING_COINS = 100
FIRST_REPLY_STARTS = 3
BACKGROUND_SCAN_SECONDS_MAX = 1_800.0


@dataclass(frozen=True)
class Sizes:
    players: int
    instant_games_per_player: int
    blackjack_rounds_per_player: int
    live_games: int
    # Settled games (and as many wallets) in the store of the first-reply boot.
    settled_games: int


FULL = Sizes(
    players=1_000,
    instant_games_per_player=20,
    blackjack_rounds_per_player=5,
    live_games=100_000,
    settled_games=1_000_000,
)
QUICK = Sizes(
    players=200,
    instant_games_per_player=5,
    blackjack_rounds_per_player=2,
    live_games=2_000,
    settled_games=20_000,
)


def run(quick: bool) -> dict[str, float]:
    """Run the games benchmarks on fresh stores in a temporary directory."""
    sizes = QUICK if quick else FULL
    figures: dict[str, float] = trio.run(bench_games, sizes)
    return figures


async def bench_games(sizes: Sizes) -> dict[str, float]:
    figures: dict[str, float] = {
        "players": sizes.players,
        "live_games": sizes.live_games,
        "settled_games": sizes.settled_games,
    }
    with tempfile.TemporaryDirectory(prefix="croupier-bench-") as tmp:
        figures.update(await bench_throughput(Path(tmp) / "throughput", sizes))
        figures.update(await bench_boot(Path(tmp) / "boot", sizes.live_games))
        figures.update(await bench_first_reply(Path(tmp), sizes.settled_games))
    return figures


async def run_all(count: int, job: Callable[[int], Awaitable[None]], in_flight: int) -> float:
    """Run ``job(0)`` to ``job(count - 1)``, at most ``in_flight`` at once; the seconds."""
    limiter = trio.CapacityLimiter(in_flight)

    async def one(index: int) -> None:
        async with limiter:
            await job(index)

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(one, index)
    return time.perf_counter() - started


def check_integrity(store: Store) -> dict[str, int]:
    report = check_store(store)
    if not report.ok:
        raise AssertionError(f"integrity check failed after the games:\n{report.text()}")
    return report.figures


async def bench_throughput(data_dir: Path, sizes: Sizes) -> dict[str, float]:
    players = sizes.players
    async with booted(data_dir) as running:
        economy, games = running.casino.economy, running.casino.games
        await economy.update_settings(
            GUILD, {"game_cooldown_seconds": 0, "starting_balance": STARTING_BALANCE_COINS}
        )

        async def open_wallet(player: int) -> None:
            await economy.balance(GUILD, player + 1)

        async def play_instant(player: int) -> None:
            for game in range(sizes.instant_games_per_player):
                kind, params = INSTANT_GAMES[game % len(INSTANT_GAMES)]
                stake = {**params, "stake": STAKE_COINS}
                await games.play(GUILD, player + 1, kind, stake, f"instant-{game}")

        async def play_blackjack(player: int) -> None:
            for round_ in range(sizes.blackjack_rounds_per_player):
                view = await games.start_blackjack(
                    GUILD, player + 1, STAKE_COINS, f"blackjack-{round_}"
                )
                while view.phase == "live":
                    key = f"blackjack-{round_}-{view.step}"
                    view = await games.move(view.game_id, player + 1, "stand", view.step, key)

        await run_all(players, open_wallet, players)
        instant_s = await run_all(players, play_instant, players)
        instant_per_s = players * sizes.instant_games_per_player / instant_s
        progress(f"{players} players: {instant_per_s:,.0f} instant games/s")
        blackjack_s = await run_all(players, play_blackjack, players)
        blackjack_per_s = players * sizes.blackjack_rounds_per_player / blackjack_s
        progress(f"{players} players: {blackjack_per_s:,.0f} blackjack rounds/s")
        check_integrity(running.store)
    return {
        "games_per_s_1000_players": instant_per_s,
        "blackjack_rounds_per_s_1000_players": blackjack_per_s,
    }


async def start_live_games(casino: Casino, count: int) -> None:
    """Start blackjack games for new players until ``count`` of them are live (a natural
    settles a round at the deal)."""
    live, players = 0, 0
    while live < count:
        first, wanted = players + 1, count - live
        settled: list[int] = []

        async def start(index: int, first: int = first, settled: list[int] = settled) -> None:
            view = await casino.games.start_blackjack(GUILD, first + index, STAKE_COINS, "1")
            if view.phase != "live":
                settled.append(index)

        await run_all(wanted, start, STARTS_IN_FLIGHT_MAX)
        players += wanted
        live += wanted - len(settled)


async def bench_boot(data_dir: Path, live_games: int) -> dict[str, float]:
    async with booted(data_dir) as running:
        started = time.perf_counter()
        await start_live_games(running.casino, live_games)
        created_s = time.perf_counter() - started
        progress(f"started {live_games:,} live blackjack games in {created_s:.1f} s")
        figures = check_integrity(running.store)
        assert figures["games_live"] == live_games, figures
    started = time.perf_counter()
    async with booted(data_dir) as running:
        ready_s = time.perf_counter() - started
        assert running.boot is not None
        recovery = running.boot.recovery
    assert recovery is not None
    progress(f"boot to ready over {live_games:,} live games: {ready_s:.3f} s")
    return {
        "boot_to_ready_s_100k_games": ready_s,
        "boot_recovery_resumed_games": recovery.resumed,
        "boot_recovery_refunded_games": recovery.refunded,
    }


# --- boot to the first reply over a long history ----------------------------------------


def settled_outcomes() -> list[tuple[GameRecord, int]]:
    """Settled coinflips resolved by the real rules, and each one's net for its player."""
    made = []
    for nonce in range(SETTLED_OUTCOMES_DISTINCT):
        server_seed, client_seed = rules.new_server_seed(), f"bench-{nonce}"
        params = {"choice": "heads", "stake": STAKE_COINS}
        settlement = rules.play("coinflip", server_seed, client_seed, nonce, params)
        seeds = (server_seed, client_seed, nonce)
        outcome = settlement.to_record()
        record = settled_instant("", "coinflip", GUILD, 0, seeds, params, outcome, LOAD_TIME)
        made.append((record, settlement.payout - STAKE_COINS))
    return made


async def load_settled_games(store: Store, count: int) -> None:
    """One settled coinflip for each of players 1..count, written directly in big commits
    beside their wallets: the player's net is in the wallet, the house books the other
    side, and the treasury issued only the opening balances."""
    outcomes = settled_outcomes()

    def net(user: int) -> int:
        return outcomes[user % len(outcomes)][1]

    await load_wallets(store, count, lambda user: SETTLED_OPENING_COINS + net(user))
    db_games, db_system = store.db("games"), store.db("system")
    for first in range(1, count + 1, LOAD_BATCH_ROWS):
        users = range(first, min(count + 1, first + LOAD_BATCH_ROWS))
        # Game ids are hex like the engine's, numbered so that they append in key order.
        rows = [
            (
                keys.game_key(f"{user:012x}"),
                GAME.encode(
                    dataclasses.replace(
                        outcomes[user % len(outcomes)][0], game_id=f"{user:012x}", user=user
                    )
                ),
            )
            for user in users
        ]
        nets = sum(net(user) for user in users)

        def load(txn: Any, rows: list[tuple[bytes, bytes]] = rows, nets: int = nets) -> None:
            txn.cursor(db=db_games).putmulti(rows, append=True)
            system_add(txn, db_system, GUILD, HOUSE, -nets)
            # load_wallets debited the treasury for the whole balance; it issued only the
            # opening balance, and the games moved the rest.
            system_add(txn, db_system, GUILD, TREASURY, nets)

        await store.write(load)


def _integrity_condition(port: int) -> dict[str, Any] | None:
    """The ``integrity`` condition of the server's /readyz, or None if it cannot be read."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/readyz")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            body = answer.read()
    except urllib.error.HTTPError as error:
        body = error.read()
    except OSError:
        return None
    condition: dict[str, Any] = json.loads(body)["conditions"]["integrity"]
    return condition


def time_first_reply(data_dir: Path, *, wait_for_scan: bool) -> tuple[float, float | None]:
    """Spawn ``croupier console --json`` on ``data_dir``; the seconds to its first reply,
    and (with ``wait_for_scan``) to the background integrity scan's result."""
    port = free_port()
    croupier = str(Path(sys.executable).with_name("croupier"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROUPIER_")}
    env.update(
        CROUPIER_DATA_DIR=str(data_dir),
        CROUPIER_METRICS_ADDR=f"127.0.0.1:{port}",
        CROUPIER_LOG_FILE=str(data_dir.parent / f"{data_dir.name}.log"),
    )
    request = json.dumps({"user": 1, "command": "balance"}) + "\n"
    started = time.perf_counter()
    with subprocess.Popen(
        [croupier, "console", "--json"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(request.encode())
            process.stdin.flush()
            reply = process.stdout.readline()
            first_reply_s = time.perf_counter() - started
            if not reply or not json.loads(reply)["ok"]:
                raise AssertionError(f"no good first reply from the console: {reply!r}")
            scan_s = _wait_for_scan(port, started) if wait_for_scan else None
            process.stdin.close()
            process.wait(timeout=BACKGROUND_SCAN_SECONDS_MAX)
        finally:
            if process.poll() is None:
                process.kill()
    return first_reply_s, scan_s


def _wait_for_scan(port: int, started: float) -> float:
    while time.perf_counter() - started < BACKGROUND_SCAN_SECONDS_MAX:
        condition = _integrity_condition(port)
        if condition is not None and not condition["pending"]:
            if not condition["ok"]:
                raise AssertionError(f"the background integrity scan failed: {condition}")
            return time.perf_counter() - started
        time.sleep(0.2)
    raise AssertionError(f"no integrity result in {BACKGROUND_SCAN_SECONDS_MAX} s")


async def bench_first_reply(tmp: Path, settled_games: int) -> dict[str, float]:
    empty, history = tmp / "empty", tmp / "history"
    async with open_store(empty):
        pass
    async with open_store(history) as store:
        started = time.perf_counter()
        await load_settled_games(store, settled_games)
        progress(
            f"wrote {settled_games:,} wallets and settled games in "
            f"{time.perf_counter() - started:.1f} s"
        )
    empty_runs: list[float] = []
    history_runs: list[float] = []
    scan_s: float | None = None
    # Starts alternate between the two stores so that both see the same machine; the
    # figures are medians, since one start on a shared machine can take twice another.
    for start in range(FIRST_REPLY_STARTS):
        empty_s, _ = await trio.to_thread.run_sync(
            partial(time_first_reply, empty, wait_for_scan=False)
        )
        reply_s, scanned_s = await trio.to_thread.run_sync(
            partial(time_first_reply, history, wait_for_scan=start == 0)
        )
        empty_runs.append(empty_s)
        history_runs.append(reply_s)
        scan_s = scanned_s if start == 0 else scan_s
    assert scan_s is not None
    empty_s, reply_s = statistics.median(empty_runs), statistics.median(history_runs)
    progress(
        f"first reply over {settled_games:,} settled games: {reply_s:.3f} s "
        f"(empty store {empty_s:.3f} s; medians of {FIRST_REPLY_STARTS} starts); "
        f"background scan done at {scan_s:.1f} s"
    )
    return {
        "boot_to_first_reply_s_1m_settled_games": reply_s,
        "boot_to_first_reply_s_empty_store": empty_s,
        "integrity_background_scan_s_1m_settled_games": scan_s,
    }
