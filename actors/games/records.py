"""The durable record of one game."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actors.accounts import TransferId, game_account, user_account
from actors.records import OutboxRecord
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


def settled_instant(
    game_id: str,
    kind: str,
    scope: int,
    user: int,
    seeds: tuple[str, str, int],
    params: dict[str, Any],
    outcome: dict[str, Any],
    now: float,
) -> GameRecord:
    """The record of an instant game, settled before its stake commit: it holds no escrow,
    its state is the player's choices and ``outcome`` the rules' settlement record."""
    server_seed, client_seed, nonce = seeds
    return GameRecord(
        game_id=game_id,
        kind=kind,
        scope=scope,
        user=user,
        escrow=0,
        phase=SETTLED,
        created_at=now,
        deadline=now,
        server_seed=server_seed,
        client_seed=client_seed,
        nonce=nonce,
        state=dict(params),
        outcome=outcome,
        staked=params["stake"],
    )


def to_player(
    record: GameRecord, transfer_id: TransferId, amount: int, reason: str, at: float
) -> OutboxRecord:
    """The outbox record of a transfer from the game's escrow to its player (a payout or
    a refund), in the game's current round."""
    return OutboxRecord(
        transfer_id=str(transfer_id),
        scope=record.scope,
        source=game_account(record.game_id),
        target=user_account(record.user),
        amount=amount,
        reason=reason,
        at=at,
        source_ref=record.round,
    )
