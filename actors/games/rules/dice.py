"""Dice: guess one die (pays 5:1), or bet the total of two dice is over or under 7 (1:1).

A total of exactly 7 loses both the over and the under bet; that is the house's edge.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

from actors.errors import InvalidInput

from .fair import FairStream
from .settlement import Settlement, check_stake

BETS = ("number", "over", "under")
FACES = 6
LINE = 7
NUMBER_PAYOUT_MULTIPLE = 6
OVER_UNDER_PAYOUT_MULTIPLE = 2


def check_bet(bet: object, number: object) -> tuple[str, int | None]:
    """Return ``(bet, number)`` if they make a valid dice bet, else raise ``InvalidInput``.

    ``number`` is the guessed face for a ``number`` bet and must be ``None`` otherwise.
    """
    if not isinstance(bet, str) or bet not in BETS:
        raise InvalidInput("bet", "choose number, over or under")
    if bet != "number":
        if number is not None:
            raise InvalidInput("number", f"only a number bet takes a number, not {bet}")
        return bet, None
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= FACES:
        raise InvalidInput("number", f"guess a whole number from 1 to {FACES}")
    return bet, number


def dice_count(bet: str) -> int:
    """How many dice a bet rolls: one for a number guess, two for over or under."""
    return 1 if bet == "number" else 2


def resolve(stake: int, bet: str, number: int | None, dice: tuple[int, ...]) -> Settlement:
    """The outcome of a checked bet when the dice show ``dice``."""
    assert len(dice) == dice_count(bet) and all(1 <= die <= FACES for die in dice)
    total = sum(dice)
    if bet == "number":
        won, payout_multiple, call = total == number, NUMBER_PAYOUT_MULTIPLE, f"{number}"
    else:
        won = total > LINE if bet == "over" else total < LINE
        payout_multiple, call = OVER_UNDER_PAYOUT_MULTIPLE, f"{bet} {LINE}"
    payout = payout_multiple * stake if won else 0
    detail = {"bet": bet, "number": number, "dice": list(dice), "total": total}
    shown = " + ".join(str(die) for die in dice) + (f" = {total}" if len(dice) > 1 else "")
    return Settlement.of(stake, payout, detail, f"🎲 {shown}; you bet {call}")


def play(
    server_seed: str, client_seed: str, nonce: int, stake: int, bet: str, number: int | None = None
) -> Settlement:
    """Roll this game's dice for the bet ``bet`` (with ``number`` for a number guess)."""
    check_stake(stake)
    check_bet(bet, number)
    stream = FairStream(server_seed, client_seed, nonce)
    dice = tuple(1 + stream.randbelow(FACES) for _ in range(dice_count(bet)))
    return resolve(stake, bet, number, dice)


def rtp(bet: str) -> Fraction:
    """The exact return to player of ``bet``, by enumerating every roll of its dice."""
    number = 1 if bet == "number" else None
    rolls = list(itertools.product(range(1, FACES + 1), repeat=dice_count(bet)))
    return Fraction(sum(resolve(1, bet, number, roll).payout for roll in rolls), len(rolls))
