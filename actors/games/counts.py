"""What the games count: games started, settled, refunded, and the coins wagered and paid
out per game and bet kind (the return-to-player panels divide the last two)."""

from __future__ import annotations

import logging

from actors.games import rules
from actors.games.records import GameRecord
from metrics import Metrics, log_event

log = logging.getLogger("croupier.games")

INSTANT_KINDS = ("coinflip", "dice", "slots", "roulette")


def settled(metrics: Metrics, record: GameRecord, result: str, payout: int) -> None:
    """Count a settled game: an instant game starts and settles in one commit, so it is
    counted as started here too (a blackjack round is counted when it is dealt)."""
    if record.kind in INSTANT_KINDS:
        metrics.games_started.labels(record.kind).inc()
    metrics.games_settled.labels(record.kind, result).inc()
    bet = rules.bet_kind(record.kind, record.state)
    metrics.games_wagered.labels(record.kind, bet).inc(record.staked)
    metrics.games_paid_out.labels(record.kind, bet).inc(payout)


def refunded(metrics: Metrics, record: GameRecord, reason: str) -> None:
    """Count and log a refunded game (its whole escrow went back to the player)."""
    metrics.games_refunded.labels(record.kind, reason).inc()
    log_event(
        log,
        "game_refunded",
        level=logging.WARNING,
        game=record.game_id,
        kind=record.kind,
        reason=reason,
        coins=record.escrow,
    )
