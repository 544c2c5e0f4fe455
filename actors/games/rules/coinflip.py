"""Coinflip: call heads or tails; a right call pays 1:1."""

from __future__ import annotations

from fractions import Fraction

from actors.errors import InvalidInput

from .fair import FairStream
from .settlement import Settlement, check_stake

SIDES = ("heads", "tails")
PAYOUT_MULTIPLE = 2


def check_choice(choice: object) -> str:
    """Return ``choice`` if it is a side of the coin, else raise ``InvalidInput``."""
    if not isinstance(choice, str) or choice not in SIDES:
        raise InvalidInput("choice", "call heads or tails")
    return choice


def resolve(stake: int, choice: str, side: str) -> Settlement:
    """The outcome of calling ``choice`` when the coin shows ``side``."""
    assert side in SIDES
    payout = PAYOUT_MULTIPLE * stake if side == choice else 0
    detail = {"choice": choice, "side": side}
    return Settlement.of(stake, payout, detail, f"The coin shows {side}; you called {choice}")


def play(server_seed: str, client_seed: str, nonce: int, stake: int, choice: str) -> Settlement:
    """Flip the coin of this game's seeds for a player who called ``choice``."""
    check_stake(stake)
    check_choice(choice)
    side = SIDES[FairStream(server_seed, client_seed, nonce).randbelow(len(SIDES))]
    return resolve(stake, choice, side)


def rtp() -> Fraction:
    """The exact return to player, by enumerating both sides of the coin."""
    return Fraction(sum(resolve(1, SIDES[0], side).payout for side in SIDES), len(SIDES))
