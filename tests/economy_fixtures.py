"""A running economy over a real store, for the economy and games tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from actors import ActorSystem, Economy, IntegrityReport, TimerService, check_store, run_casino
from actors.games import Games, RecoveryReport
from limits import Limits
from metrics import Metrics
from storage import Store

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
    """The economy with only its actors started: nothing is delivered or recovered at
    start, so a test can look at what a previous run left in flight."""
    clock = clock or WallClock()
    async with run_casino(
        data_dir,
        limits=limits,
        wall_clock=clock,
        commit_in_thread=commit_in_thread,
        global_scope=global_scope,
        boot=False,
    ) as running:
        casino = running.casino
        yield Running(running.store, casino.actors, casino.economy, clock, running.metrics)


@dataclass
class RunningGames(Running):
    games: Games
    timers: TimerService
    recovery: RecoveryReport | None = None


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
    """An economy plus games and the timer scheduler, booted as the server boots them."""
    wall = clock or WallClock()
    async with run_casino(
        data_dir,
        limits=limits,
        wall_clock=wall,
        commit_in_thread=commit_in_thread,
        idle_seconds=idle_seconds,
        recovery_seconds=recovery_seconds,
        recover=recover,
    ) as running:
        casino, boot = running.casino, running.boot
        assert boot is not None
        yield RunningGames(
            running.store,
            casino.actors,
            casino.economy,
            wall,  # type: ignore[arg-type]
            running.metrics,
            casino.games,
            casino.timers,
            boot.recovery,
        )
