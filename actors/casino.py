"""The domain wired together: actor system, economy, games and timers, and their boot.

The server and the tests build it the same way, so what the tests run is what ships.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import trio

from actors.context import EconomyContext
from actors.economy import Economy
from actors.games import Games, RecoveryReport
from actors.runtime import ActorSystem
from actors.timers import TimerService
from metrics import Metrics
from storage import Store


@dataclass(frozen=True)
class BootReport:
    transfers_delivered: int
    recovery: RecoveryReport | None


@dataclass
class Casino:
    actors: ActorSystem
    economy: Economy
    games: Games
    timers: TimerService

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
) -> Casino:
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
    return Casino(actors, economy, games, timers)
