"""Pure casino rules: provably fair draws, payouts and return-to-player figures.

Nothing here does I/O, keeps global state or knows about trio or storage; game actors call
these functions and persist the ``to_record()`` forms. Every game is resolved from a server
seed, a client seed, a nonce and the player's public choices (``params``), so ``verify``
recomputes any finished game from what the actor stored and revealed.

``params`` by kind (every kind takes ``stake``, a whole number of coins):

- ``blackjack``: ``actions``, the list of action names applied after the deal.
- ``coinflip``: ``choice``, ``"heads"`` or ``"tails"``.
- ``dice``: ``bet``, ``"number"`` (with ``number`` 1 to 6), ``"over"`` or ``"under"``.
- ``roulette``: ``bet`` (see ``roulette.PAYOUT_MULTIPLES``) and, for ``straight``,
  ``dozen`` and ``column``, ``number``.
- ``slots``: nothing more.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actors.errors import InvalidInput

from . import blackjack, coinflip, dice, roulette, slots
from .fair import FairStream, check_seeds, new_server_seed, seed_hash
from .settlement import Record, Settlement, check_stake

__all__ = [
    "BET_KINDS",
    "KINDS",
    "FairStream",
    "Record",
    "Settlement",
    "bet_kind",
    "blackjack",
    "check_params",
    "check_seeds",
    "check_stake",
    "coinflip",
    "dice",
    "new_server_seed",
    "play",
    "roulette",
    "seed_hash",
    "slots",
    "theoretical_rtp",
    "verify",
]

# Kind -> (keys every game of the kind needs in params, keys it may have).
_PARAM_KEYS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "blackjack": (frozenset({"stake", "actions"}), frozenset()),
    "coinflip": (frozenset({"stake", "choice"}), frozenset()),
    "dice": (frozenset({"stake", "bet"}), frozenset({"number"})),
    "roulette": (frozenset({"stake", "bet"}), frozenset({"number"})),
    "slots": (frozenset({"stake"}), frozenset()),
}
KINDS = tuple(_PARAM_KEYS)

# Kind -> the bets a game of the kind can be, each with its own return to player: the
# label values of the per-bet metrics (a bounded set). Every roulette bet returns 36/37,
# but each is named, so the observed return of each bet has a theoretical line to meet.
BET_KINDS: dict[str, tuple[str, ...]] = {
    "blackjack": ("hand",),
    "coinflip": ("call",),
    "dice": dice.BETS,
    "roulette": tuple(roulette.PAYOUT_MULTIPLES),
    "slots": ("spin",),
}


def bet_kind(kind: str, params: Mapping[str, Any]) -> str:
    """The bet kind of a game of ``kind`` with (checked) ``params``, one of ``BET_KINDS``.

    A blackjack game's ``params`` may be its state record: every round is one kind of bet.
    """
    bets = BET_KINDS[kind]
    bet = str(params["bet"]) if kind in ("dice", "roulette") else bets[0]
    assert bet in bets, (kind, bet)
    return bet


def check_params(kind: str, params: Mapping[str, Any]) -> None:
    """Raise ``InvalidInput`` unless ``params`` are valid choices for a game of ``kind``.

    Actors call this before escrowing a stake, so a bad bet never moves money.
    """
    if kind not in _PARAM_KEYS:
        raise InvalidInput("kind", f"choose one of {', '.join(KINDS)}")
    required, optional = _PARAM_KEYS[kind]
    missing = sorted(required - params.keys())
    if missing:
        raise InvalidInput(missing[0], f"a {kind} game needs a {missing[0]}")
    unknown = sorted(params.keys() - required - optional)
    if unknown:
        raise InvalidInput(unknown[0], f"a {kind} game takes no {unknown[0]}")
    check_stake(params["stake"])
    match kind:
        case "blackjack":
            actions = params["actions"]
            if not isinstance(actions, list | tuple) or not all(
                isinstance(action, str) for action in actions
            ):
                raise InvalidInput("actions", "give the list of action names played")
        case "coinflip":
            coinflip.check_choice(params["choice"])
        case "dice":
            dice.check_bet(params["bet"], params.get("number"))
        case "roulette":
            roulette.check_bet(params["bet"], params.get("number"))


def play(
    kind: str, server_seed: str, client_seed: str, nonce: int, params: Mapping[str, Any]
) -> Settlement:
    """Resolve a whole game of ``kind`` from its seeds and the player's choices.

    A blackjack game is dealt and its actions replayed; they must finish the round.
    """
    check_seeds(server_seed, client_seed, nonce)
    check_params(kind, params)
    seeds = (server_seed, client_seed, nonce)
    stake: int = params["stake"]
    match kind:
        case "blackjack":
            state = blackjack.replay(*seeds, stake, params["actions"])
            if not blackjack.is_settled(state):
                raise InvalidInput("actions", "these actions leave the round unfinished")
            return blackjack.settle(state)
        case "coinflip":
            return coinflip.play(*seeds, stake, params["choice"])
        case "dice":
            return dice.play(*seeds, stake, params["bet"], params.get("number"))
        case "roulette":
            return roulette.play(*seeds, stake, params["bet"], params.get("number"))
        case "slots":
            return slots.play(*seeds, stake)
    raise AssertionError(kind)


def verify(
    kind: str, server_seed: str, client_seed: str, nonce: int, params: Mapping[str, Any]
) -> Record:
    """The outcome record a finished game must have had, recomputed from revealed seeds.

    Equal to ``to_record()`` of the ``Settlement`` the actor settled the game with.
    """
    return play(kind, server_seed, client_seed, nonce, params).to_record()


def theoretical_rtp() -> dict[tuple[str, str], float]:
    """Each (kind, bet kind)'s return to player per coin staked, for the metrics gauge.

    Exact for the one-draw games (dice: a number guess returns 1, over and under 5/6).
    Blackjack's is the basic-strategy figure at an even stake documented at
    ``blackjack.THEORETICAL_RTP``; an odd stake returns a little more (``blackjack.rtp``).
    """
    figures: dict[tuple[str, str], float] = {
        ("blackjack", "hand"): blackjack.THEORETICAL_RTP,
        ("coinflip", "call"): float(coinflip.rtp()),
        ("slots", "spin"): float(slots.rtp()),
    }
    for bet in dice.BETS:
        figures["dice", bet] = float(dice.rtp(bet))
    for bet in roulette.PAYOUT_MULTIPLES:
        figures["roulette", bet] = float(
            min(roulette.rtp(b, number) for b, number in roulette.ALL_BETS if b == bet)
        )
    assert set(figures) == {(kind, bet) for kind, bets in BET_KINDS.items() for bet in bets}
    return figures
