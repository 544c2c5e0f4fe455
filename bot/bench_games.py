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
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from actors.casino import BootReport, Casino, build_casino
from actors.integrity import check_store
from bot.bench import progress
from bot.server import tune_gc
from metrics import new_metrics
from storage import Limits, Store, open_store

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


@dataclass(frozen=True)
class Sizes:
    players: int
    instant_games_per_player: int
    blackjack_rounds_per_player: int
    live_games: int


FULL = Sizes(
    players=1_000, instant_games_per_player=20, blackjack_rounds_per_player=5, live_games=100_000
)
QUICK = Sizes(
    players=200, instant_games_per_player=5, blackjack_rounds_per_player=2, live_games=2_000
)


@dataclass
class Booted:
    store: Store
    casino: Casino
    report: BootReport


def run(quick: bool) -> dict[str, float]:
    """Run the games benchmarks on fresh stores in a temporary directory."""
    sizes = QUICK if quick else FULL
    figures: dict[str, float] = trio.run(bench_games, sizes)
    return figures


async def bench_games(sizes: Sizes) -> dict[str, float]:
    figures: dict[str, float] = {"players": sizes.players, "live_games": sizes.live_games}
    with tempfile.TemporaryDirectory(prefix="croupier-bench-") as tmp:
        figures.update(await bench_throughput(Path(tmp) / "throughput", sizes))
        figures.update(await bench_boot(Path(tmp) / "boot", sizes.live_games))
    return figures


@asynccontextmanager
async def boot(data_dir: Path, limits: Limits) -> AsyncIterator[Booted]:
    """The server's boot up to ready: store (lock and migrations), actor system, delivery
    of transfers left in flight, recovery of games, timers."""
    metrics = new_metrics()
    async with (
        open_store(data_dir, limits=limits, metrics=metrics) as store,
        trio.open_nursery() as nursery,
    ):
        casino = build_casino(store, metrics=metrics, wall_clock=time.time)
        report = await casino.boot(nursery)
        # The server tunes the garbage collector right after boot; so does the bench.
        tune_gc()
        try:
            yield Booted(store, casino, report)
        finally:
            await casino.actors.close()
            nursery.cancel_scope.cancel()


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
    async with boot(data_dir, Limits()) as booted:
        economy, games = booted.casino.economy, booted.casino.games
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
        check_integrity(booted.store)
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
    limits = Limits()
    async with boot(data_dir, limits) as booted:
        started = time.perf_counter()
        await start_live_games(booted.casino, live_games)
        created_s = time.perf_counter() - started
        progress(f"started {live_games:,} live blackjack games in {created_s:.1f} s")
        figures = check_integrity(booted.store)
        assert figures["games_live"] == live_games, figures
    started = time.perf_counter()
    async with boot(data_dir, limits) as booted:
        ready_s = time.perf_counter() - started
        recovery = booted.report.recovery
    assert recovery is not None
    progress(f"boot to ready over {live_games:,} live games: {ready_s:.3f} s")
    return {
        "boot_to_ready_s_100k_games": ready_s,
        "boot_recovery_resumed_games": recovery.resumed,
        "boot_recovery_refunded_games": recovery.refunded,
    }
