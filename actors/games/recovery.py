"""What a restart or a crash leaves behind: old live games are refunded at boot, and a
game that cannot be handled is parked, so no one game stops the server.

Recovery is lazy: boot reads only the live-games index; a young game resumes on its next
message or deadline. An old game is refunded by its own actor (a ``Refund`` message, the
actor's one refund commit); one whose index entry or record cannot be read, or whose
refund raises, is parked with its escrow (``actors/games/parking.py``). The escalation of
a game actor that keeps crashing (in the service) parks through here as well.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio

from actors.context import EconomyContext
from actors.failures import ActorCrashed, RuntimeFailure
from actors.games.actor import GAME_ACTOR, Refund
from actors.games.parking import park_game
from actors.parked import error_text
from actors.runtime import ActorSystem
from limits import recovery_refunds_concurrent_max
from metrics import Metrics, log_event
from storage import RecordDecodeError, unpackb

log = logging.getLogger("croupier.games")


@dataclass(frozen=True)
class RecoveryReport:
    resumed: int
    refunded: int
    # Games parked so far by this process (at recovery or after repeated crashes).
    parked: int = 0


class Recovery:
    """Boot recovery and parking of the games in one store."""

    def __init__(
        self,
        context: EconomyContext,
        actors: ActorSystem,
        metrics: Metrics,
        recovery_seconds: float,
    ) -> None:
        self.context = context
        self.store = context.store
        self.actors = actors
        self.metrics = metrics
        self.recovery_seconds = recovery_seconds
        self.parked = 0

    def _live_index(self) -> tuple[list[tuple[bytes, str]], list[tuple[bytes, str]], int]:
        """The live-games index read at boot: (old games, unreadable entries, how many
        young games resume lazily)."""
        cutoff = self.context.now() - self.recovery_seconds
        old: list[tuple[bytes, str]] = []
        unreadable: list[tuple[bytes, str]] = []
        resumed = 0
        with self.store.read() as txn:
            for key, value in txn.cursor(db=self.store.db("live_games")):
                try:
                    game_id, created_at = unpackb(value)
                    is_old = float(created_at) < cutoff
                except (RecordDecodeError, TypeError, ValueError) as exc:
                    unreadable.append((bytes(key), error_text(exc)))
                    continue
                if is_old:
                    old.append((bytes(key), str(game_id)))
                else:
                    resumed += 1
        return old, unreadable, resumed

    async def recover(self) -> RecoveryReport:
        """At boot: refund every live game older than the recovery window. Younger ones
        are left in the store and resume on their next message or deadline. A game that
        cannot be handled (an unreadable index entry or record, a refund that raises) is
        parked instead, so no game stops boot."""
        old, unreadable, resumed = self._live_index()
        limiter = trio.CapacityLimiter(recovery_refunds_concurrent_max)
        refunded = 0

        async def refund(live_key: bytes, game_id: str) -> None:
            nonlocal refunded
            async with limiter:
                try:
                    if await self.actors.ask(GAME_ACTOR, game_id, Refund("expired")):
                        refunded += 1
                except ActorCrashed as exc:
                    await self.unrecoverable(game_id, live_key, error_text(exc))
                except RuntimeFailure:
                    # Not the game's fault: it stays live, and its overdue deadline timer
                    # ends it (or the next boot refunds it).
                    log.warning("refund of game %s deferred: its actor is busy", game_id)
                except Exception as exc:
                    await self.unrecoverable(game_id, live_key, error_text(exc))

        for live_key, error in unreadable:
            await self.unrecoverable("", live_key, error)
        async with trio.open_nursery() as nursery:
            for live_key, game_id in old:
                nursery.start_soon(refund, live_key, game_id)
        if refunded:
            log.warning("refunded %d games older than the recovery window", refunded)
        log.info("game recovery: %d resumed lazily, %d refunded", resumed, refunded)
        return RecoveryReport(resumed, refunded, self.parked)

    async def unrecoverable(self, game_id: str, live_key: bytes | None, error: str) -> None:
        """Park a game that cannot be handled, and count it; never raises. (Recovery and
        the escalation of its crashing actor may both get here: it is counted once, by
        whichever moves it.)"""
        log.error("game %s (index %r) cannot be handled: %s", game_id, live_key, error)
        store, now = self.store, self.context.now()
        try:
            moved = await self.store.write(
                lambda txn: park_game(txn, store, game_id, live_key, error, now)
            )
        except Exception:
            self.metrics.games_recovery_failures.inc()
            log.exception("parking game %s failed; it is tried again at the next boot", game_id)
            return
        if moved:
            self.metrics.games_recovery_failures.inc()
            self.parked += 1
            self.metrics.parked.labels("game").inc()
            self.actors.passivate(GAME_ACTOR, game_id)
            log_event(log, "game_parked", level=logging.ERROR, game=game_id, error=error)
