"""The domain wired together: actor system, economy, games and timers, and their boot.

``run_casino`` opens a store, wires the domain on it, boots it and closes it in order;
the server, the benchmarks and the tests all run the domain through it, so what the
tests and the benchmarks run is what ships. ``build_casino`` is the wiring alone and
``Casino.boot`` the boot order, the two places a new service registers.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from actors.context import EconomyContext
from actors.discord_port import DiscordPort
from actors.economy import Economy
from actors.games import Games, RecoveryReport
from actors.runtime import ActorSystem
from actors.scheduler import Scheduler
from actors.timers import TimerService
from limits import Limits, gc_young_collection_objects
from metrics import Metrics, new_metrics
from storage import Store, open_store


@dataclass(frozen=True)
class BootReport:
    transfers_delivered: int
    recovery: RecoveryReport | None


@dataclass(frozen=True)
class RunningCasino:
    """What ``run_casino`` runs: the store, its metrics, the domain, and what boot did
    (None when only the actors were started)."""

    store: Store
    metrics: Metrics
    casino: Casino
    boot: BootReport | None


@dataclass
class Casino:
    actors: ActorSystem
    economy: Economy
    games: Games
    timers: TimerService
    scheduler: Scheduler

    async def boot(self, nursery: trio.Nursery, *, recover: bool = True) -> BootReport:
        """Start the actors, deliver transfers left in flight, refund or resume games,
        then start the timers (so overdue deadlines of young games fire after recovery).

        A transfer that fails to deliver does not stop boot: the redelivery loop, started
        first, retries it with backoff and parks it if it never lands."""
        await nursery.start(self.actors.run)
        await nursery.start(self.economy.run_redelivery)
        delivered = await self.economy.deliver_pending()
        recovery = await self.games.recover() if recover else None
        await nursery.start(self.timers.run)
        return BootReport(delivered, recovery)


def build_casino(
    store: Store,
    *,
    metrics: Metrics,
    wall_clock: Callable[[], float],
    global_scope: bool = False,
    idle_seconds: float | None = None,
    recovery_seconds: float | None = None,
    discord: DiscordPort | None = None,
) -> Casino:
    """The domain over ``store``. ``discord`` is the port the scheduler acts through; a
    transport without Discord passes None, and the scheduler's timers then wait for a
    run that has one (see ``actors.scheduler.Scheduler``)."""
    limits = store.limits
    actors = ActorSystem(limits=limits, metrics=metrics)
    context = EconomyContext(store=store, limits=limits, now=wall_clock, global_scope=global_scope)
    economy = Economy(context, actors)
    timers = TimerService(store, wall_clock=wall_clock)
    games = Games(
        context,
        actors,
        economy,
        timers,
        metrics,
        idle_seconds=limits.game_idle_seconds_default if idle_seconds is None else idle_seconds,
        recovery_seconds=(
            limits.game_recovery_seconds_default if recovery_seconds is None else recovery_seconds
        ),
    )
    scheduler = Scheduler(store, timers, wall_clock=wall_clock, discord=discord)
    return Casino(actors, economy, games, timers, scheduler)


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a long-lived domain.

    Resident actors keep tens of thousands of long-lived objects; with the default
    thresholds every full collection walks all of them, and under load those pauses
    dominated payment latency (seconds at a time in the economy benchmark). Objects
    alive after boot are frozen out of collections, and collections run less often.
    """
    gc.freeze()
    gc.set_threshold(gc_young_collection_objects, 50, 100)


@asynccontextmanager
async def run_casino(
    data_dir: str | os.PathLike[str],
    *,
    limits: Limits | None = None,
    metrics: Metrics | None = None,
    wall_clock: Callable[[], float] = time.time,
    global_scope: bool = False,
    idle_seconds: float | None = None,
    recovery_seconds: float | None = None,
    lock: bool = True,
    commit_in_thread: bool = True,
    boot: bool = True,
    recover: bool = True,
    on_store_open: Callable[[Store], None] | None = None,
    discord: DiscordPort | None = None,
) -> AsyncIterator[RunningCasino]:
    """Open the store in ``data_dir`` (lock and migrations), wire the domain on it and
    boot it; on a normal exit, drain the actors' mailboxes, then close the store.

    ``on_store_open`` is called once the store is open and migrated, before boot (the
    server reports readiness there). Without ``boot`` only the actor system runs: nothing
    is delivered, recovered or timed, so a caller can look at what a previous run left
    in flight. ``recover`` is ``Casino.boot``'s. An exception out of the block cancels
    the actors instead of draining them. ``lock`` and ``commit_in_thread`` are
    ``open_store``'s; ``global_scope``, ``idle_seconds``, ``recovery_seconds`` and
    ``discord`` are ``build_casino``'s."""
    metrics = metrics or new_metrics()
    async with (
        open_store(
            data_dir,
            limits=limits or Limits(),
            metrics=metrics,
            lock=lock,
            commit_in_thread=commit_in_thread,
        ) as store,
        trio.open_nursery() as nursery,
    ):
        if on_store_open is not None:
            on_store_open(store)
        casino = build_casino(
            store,
            metrics=metrics,
            wall_clock=wall_clock,
            global_scope=global_scope,
            idle_seconds=idle_seconds,
            recovery_seconds=recovery_seconds,
            discord=discord,
        )
        if boot:
            report = await casino.boot(nursery, recover=recover)
        else:
            await nursery.start(casino.actors.run)
            report = None
        yield RunningCasino(store, metrics, casino, report)
        await casino.actors.close()
        nursery.cancel_scope.cancel()
