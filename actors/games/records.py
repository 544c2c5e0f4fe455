"""The durable record of one game."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from storage.codec import RecordCodec

LIVE = "live"
SETTLED = "settled"
REFUNDED = "refunded"

# The timer kind of a game's deadline: the games service handles it, the integrity check
# proves each one has its live game.
GAME_TIMER_KIND = "game"


@dataclass
class GameRecord:
    """One game. ``escrow`` is the coins it holds: above zero exactly while ``phase`` is
    live. ``state`` is the rules' record of the game (for blackjack the dealt hands and the
    actions so far; for instant games the player's choices). The server seed is kept here
    from the start but shown to nobody until the game is over."""

    game_id: str
    kind: str
    scope: int
    user: int
    escrow: int
    phase: str
    created_at: float
    deadline: float
    server_seed: str
    client_seed: str
    nonce: int
    state: dict[str, Any]
    outcome: dict[str, Any] | None = None
    staked: int = 0
    round: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def step(self) -> int:
        """How many player actions the game has taken: a button names the step it was
        drawn at, so a second click of the same button is recognised as stale."""
        return len(self.state.get("actions", ()))


GAME = RecordCodec(GameRecord, kind="game", version=1)
