"""What callers see of a game: its view, an instant game's result, a verification report.

These are frozen snapshots built from a ``GameRecord`` by pure functions; nothing here
reads or writes the store. The server seed stays out of a view until its seed pair is
revealed (see ``actors/games/fairness.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actors.games import rules
from actors.games.records import LIVE, GameRecord
from actors.games.rules import blackjack as bj


@dataclass(frozen=True)
class GameView:
    """What a player may see of a game. The server seed is empty until its seed pair is
    revealed; ``seed_hash``, ``client_seed`` and ``nonce`` are always shown.

    ``outcome`` is the stored outcome record of a settled game (the rules' settlement in
    its ``to_record()`` form), None while it is live or once it is refunded.
    """

    game_id: str
    kind: str
    user: int
    phase: str
    step: int
    staked: int
    hands: tuple[tuple[tuple[int, ...], int], ...]
    active: int
    dealer: tuple[int, ...]
    legal: tuple[str, ...]
    outcome: dict[str, Any] | None
    seed_hash: str
    server_seed: str
    client_seed: str
    nonce: int
    deadline: float
    note: str = ""


@dataclass(frozen=True)
class InstantResult:
    """An instant game, settled, and the player's balance after its one commit."""

    view: GameView
    balance: int


@dataclass(frozen=True)
class VerifyReport:
    """A settled game recomputed from its revealed seeds, beside what was stored."""

    game_id: str
    kind: str
    matches: bool
    server_seed: str
    seed_hash: str
    client_seed: str
    nonce: int
    params: dict[str, Any]
    recomputed: dict[str, Any]
    stored: dict[str, Any] | None


def view_of(record: GameRecord, note: str = "", *, revealed: bool = False) -> GameView:
    """The player's view of ``record``: the dealer's hole card stays hidden while the game
    is live, and the server seed until its seed pair is ``revealed`` (a game dealt before
    seed pairs existed shows its seed once it is over)."""
    over = record.phase != LIVE
    shown = over and (revealed or "pair" not in record.extra)
    if record.kind == "blackjack":
        state = bj.BlackjackState.from_record(record.state)
        hands = tuple((hand.cards, hand.bet) for hand in state.hands)
        dealer = state.dealer if over else bj.dealer_visible(state)
        legal = () if over else tuple(sorted(str(a) for a in bj.legal_actions(state)))
        active = state.active
    else:
        hands, dealer, legal, active = (), (), (), 0
    return GameView(
        game_id=record.game_id,
        kind=record.kind,
        user=record.user,
        phase=record.phase,
        step=record.step,
        staked=record.staked,
        hands=hands,
        active=active,
        dealer=dealer,
        legal=legal,
        outcome=record.outcome,
        seed_hash=rules.seed_hash(record.server_seed),
        server_seed=record.server_seed if shown else "",
        client_seed=record.client_seed,
        nonce=record.nonce,
        deadline=record.deadline,
        note=note,
    )


def params_of(record: GameRecord) -> dict[str, Any]:
    """The rules' ``params`` that replay ``record``: the player's choices (and for
    blackjack the actions taken after the deal)."""
    if record.kind == "blackjack":
        state = bj.BlackjackState.from_record(record.state)
        return {"stake": state.stake, "actions": [str(a) for a in state.actions]}
    return dict(record.state)


def verify_report(record: GameRecord) -> VerifyReport:
    """Recompute a settled ``record`` from its revealed seeds and compare the outcomes."""
    params = params_of(record)
    recomputed = rules.verify(
        record.kind, record.server_seed, record.client_seed, record.nonce, params
    )
    return VerifyReport(
        game_id=record.game_id,
        kind=record.kind,
        matches=recomputed == record.outcome,
        server_seed=record.server_seed,
        seed_hash=rules.seed_hash(record.server_seed),
        client_seed=record.client_seed,
        nonce=record.nonce,
        params=params,
        recomputed=recomputed,
        stored=record.outcome,
    )
