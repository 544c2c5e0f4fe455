"""European roulette: one zero, pockets 0 to 36, one bet per spin.

Zero is neither red nor black, odd nor even, low nor high and in no dozen or column, so it
loses every outside bet; that single pocket is the house's edge of 1/37 on every bet.
"""

from __future__ import annotations

from fractions import Fraction

from actors.errors import InvalidInput

from .fair import FairStream
from .settlement import Settlement, check_stake

POCKETS = 37
RED = frozenset({1, 3, 5, 7, 9, 12, 14, 16, 18, 19, 21, 23, 25, 27, 30, 32, 34, 36})

# Bet name -> payout multiple (stake included): 35:1, 2:1 and 1:1 bets.
PAYOUT_MULTIPLES = {
    "straight": 36,
    "red": 2,
    "black": 2,
    "odd": 2,
    "even": 2,
    "low": 2,
    "high": 2,
    "dozen": 3,
    "column": 3,
}
# The bets that name a number, and the numbers each accepts.
NUMBER_RANGES = {"straight": range(0, 37), "dozen": range(1, 4), "column": range(1, 4)}
# Every distinct bet a player can place, as (bet, number).
ALL_BETS = tuple(
    (bet, number) for bet in PAYOUT_MULTIPLES for number in NUMBER_RANGES.get(bet, (None,))
)


def check_bet(bet: object, number: object) -> tuple[str, int | None]:
    """Return ``(bet, number)`` if they make a valid bet, else raise ``InvalidInput``.

    ``number`` is the pocket of a straight bet, or which dozen or column (1 to 3); it
    must be ``None`` for the other bets.
    """
    if not isinstance(bet, str) or bet not in PAYOUT_MULTIPLES:
        raise InvalidInput("bet", f"choose one of {', '.join(PAYOUT_MULTIPLES)}")
    allowed = NUMBER_RANGES.get(bet)
    if allowed is None:
        if number is not None:
            raise InvalidInput("number", f"a {bet} bet takes no number")
        return bet, None
    if isinstance(number, bool) or not isinstance(number, int) or number not in allowed:
        raise InvalidInput(
            "number", f"a {bet} bet needs a whole number from {allowed[0]} to {allowed[-1]}"
        )
    return bet, number


def color(pocket: int) -> str:
    """The colour of a pocket: green for zero, else red or black."""
    if pocket == 0:
        return "green"
    return "red" if pocket in RED else "black"


def wins(bet: str, number: int | None, pocket: int) -> bool:
    """Whether a checked bet wins when the ball lands in ``pocket``."""
    assert 0 <= pocket < POCKETS
    if bet == "straight":
        return pocket == number
    if pocket == 0:
        return False
    match bet:
        case "red" | "black":
            return color(pocket) == bet
        case "odd" | "even":
            return pocket % 2 == (1 if bet == "odd" else 0)
        case "low" | "high":
            return (pocket <= 18) == (bet == "low")
        case "dozen":
            return (pocket - 1) // 12 + 1 == number
        case "column":
            return (pocket - 1) % 3 + 1 == number
    raise AssertionError(bet)


def resolve(stake: int, bet: str, number: int | None, pocket: int) -> Settlement:
    """The outcome of a checked bet when the ball lands in ``pocket``."""
    payout = PAYOUT_MULTIPLES[bet] * stake if wins(bet, number, pocket) else 0
    detail = {"bet": bet, "number": number, "pocket": pocket, "color": color(pocket)}
    call = bet if number is None else f"{bet} {number}"
    return Settlement.of(
        stake, payout, detail, f"The ball lands on {pocket} {color(pocket)}; you bet {call}"
    )


def play(
    server_seed: str, client_seed: str, nonce: int, stake: int, bet: str, number: int | None = None
) -> Settlement:
    """Spin this game's wheel for one bet."""
    check_stake(stake)
    check_bet(bet, number)
    pocket = FairStream(server_seed, client_seed, nonce).randbelow(POCKETS)
    return resolve(stake, bet, number, pocket)


def rtp(bet: str, number: int | None = None) -> Fraction:
    """The exact return to player of a checked bet, by enumerating every pocket."""
    return Fraction(
        sum(resolve(1, bet, number, pocket).payout for pocket in range(POCKETS)), POCKETS
    )
