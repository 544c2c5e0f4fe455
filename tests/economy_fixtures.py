"""A running economy over a real store, for the economy and games tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from actors.casino import build_casino
from actors.economy import Economy
from actors.games.engine import Games, RecoveryReport, check_games
from actors.integrity import IntegrityReport, check_store
from actors.ledger import EconomyEnv
from actors.runtime import ActorSystem
from actors.timers import TimerService
from metrics import Metrics, new_metrics
from storage import Limits, Store, open_store

T0 = 1_800_000_000.0


class WallClock:
    """A settable wall clock; tests move it instead of sleeping."""

    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Running:
    store: Store
    actors: ActorSystem
    economy: Economy
    clock: WallClock
    metrics: Metrics

    def check(self) -> IntegrityReport:
        return check_store(self.store)


@asynccontextmanager
async def running_economy(
    data_dir: Path,
    *,
    limits: Limits | None = None,
    clock: WallClock | None = None,
    global_scope: bool = False,
    commit_in_thread: bool = True,
) -> AsyncIterator[Running]:
    limits = limits or Limits()
    clock = clock or WallClock()
    metrics = new_metrics()
    async with (
        open_store(
            data_dir, limits=limits, metrics=metrics, commit_in_thread=commit_in_thread
        ) as store,
        trio.open_nursery() as nursery,
    ):
        actors = ActorSystem(limits=limits, metrics=metrics)
        env = EconomyEnv(store=store, limits=limits, now=clock, global_scope=global_scope)
        economy = Economy(env, actors)
        await nursery.start(actors.run)
        try:
            yield Running(store, actors, economy, clock, metrics)
        finally:
            await actors.close()


@dataclass
class RunningGames(Running):
    games: Games
    timers: TimerService
    recovery: RecoveryReport | None = None

    def check(self) -> IntegrityReport:
        return check_store(self.store, extra_checks=[check_games])


@asynccontextmanager
async def running_games(
    data_dir: Path,
    *,
    limits: Limits | None = None,
    clock: WallClock | Callable[[], float] | None = None,
    commit_in_thread: bool = True,
    idle_seconds: float = 300.0,
    recovery_seconds: float = 7200.0,
    recover: bool = True,
) -> AsyncIterator[RunningGames]:
    """An economy plus games and the timer scheduler, as the server wires them."""
    limits = limits or Limits()
    wall = clock or WallClock()
    metrics = new_metrics()
    async with (
        open_store(
            data_dir, limits=limits, metrics=metrics, commit_in_thread=commit_in_thread
        ) as store,
        trio.open_nursery() as nursery,
    ):
        casino = build_casino(
            store,
            metrics=metrics,
            wall_clock=wall,
            idle_seconds=idle_seconds,
            recovery_seconds=recovery_seconds,
        )
        boot = await casino.boot(nursery, recover=recover)
        actors, economy, games, timers = casino.actors, casino.economy, casino.games, casino.timers
        recovery = boot.recovery
        try:
            yield RunningGames(store, actors, economy, wall, metrics, games, timers, recovery)  # type: ignore[arg-type]
        finally:
            await actors.close()
            nursery.cancel_scope.cancel()
