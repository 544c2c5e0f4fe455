"""Slots: three reels of weighted symbols and a published pay table.

Each reel has the same 32 stops; a spin stops every reel on a uniform stop. The pay table
is read top to bottom and the first line that matches the reels pays, so three cherries pay
their own line rather than also the two-cherry line below it.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

from .fair import FairStream
from .settlement import Settlement, check_stake

REELS = 3
ANY = "any"

# Symbol -> (emoji, stops on each reel). The rarer a symbol, the more its line pays.
SYMBOLS = {
    "cherry": ("🍒", 5),
    "lemon": ("🍋", 9),
    "grape": ("🍇", 7),
    "bell": ("🔔", 6),
    "seven": ("7️⃣", 3),
    "diamond": ("💎", 2),
}
# One reel, stop by stop; every reel is this strip.
REEL = tuple(symbol for symbol, (_, stops) in SYMBOLS.items() for _ in range(stops))

# (symbols on reels 1, 2 and 3, payout multiple with the stake included); ``ANY`` matches
# every symbol. The first matching line pays.
PAYTABLE: tuple[tuple[tuple[str, str, str], int], ...] = (
    (("diamond", "diamond", "diamond"), 250),
    (("seven", "seven", "seven"), 100),
    (("bell", "bell", "bell"), 25),
    (("grape", "grape", "grape"), 15),
    (("cherry", "cherry", "cherry"), 10),
    (("lemon", "lemon", "lemon"), 5),
    (("cherry", "cherry", ANY), 4),
    (("cherry", ANY, ANY), 2),
)


def payout_multiple(symbols: tuple[str, ...]) -> int:
    """The payout multiple of the first pay-table line matching ``symbols``, else 0."""
    assert len(symbols) == REELS
    for line, multiple in PAYTABLE:
        if all(want in (ANY, got) for want, got in zip(line, symbols, strict=True)):
            return multiple
    return 0


def resolve(stake: int, stops: tuple[int, ...]) -> Settlement:
    """The outcome of a spin whose reels stopped at ``stops``."""
    symbols = tuple(REEL[stop] for stop in stops)
    payout = payout_multiple(symbols) * stake
    detail = {"stops": list(stops), "symbols": list(symbols)}
    return Settlement.of(stake, payout, detail, " ".join(SYMBOLS[s][0] for s in symbols))


def play(server_seed: str, client_seed: str, nonce: int, stake: int) -> Settlement:
    """Spin this game's reels."""
    check_stake(stake)
    stream = FairStream(server_seed, client_seed, nonce)
    return resolve(stake, tuple(stream.randbelow(len(REEL)) for _ in range(REELS)))


def rtp() -> Fraction:
    """The exact return to player: each symbol combination's chance times what it pays.

    This weighs the 6**3 symbol combinations by their stop counts; the tests check it
    against a plain enumeration of all 32**3 reel stops.
    """
    total = Fraction(0)
    for symbols in itertools.product(SYMBOLS, repeat=REELS):
        ways = 1
        for symbol in symbols:
            ways *= SYMBOLS[symbol][1]
        total += Fraction(ways * payout_multiple(symbols), len(REEL) ** REELS)
    return total


def reel_text() -> str:
    """The reel strip, stop by stop in runs of one symbol, as a reply prints it."""
    runs, start = [], 0
    for symbol, (emoji, stops) in SYMBOLS.items():
        runs.append(f"{start}–{start + stops - 1} {emoji} {symbol}")
        start += stops
    return f"Every reel has these {len(REEL)} stops, each equally likely: " + ", ".join(runs) + "."


def paytable_text() -> str:
    """The reel strip, then the pay table one line per row, as a reply prints it."""
    rows = [reel_text()]
    for line, multiple in PAYTABLE:
        shown = " ".join("❔" if symbol == ANY else SYMBOLS[symbol][0] for symbol in line)
        rows.append(f"{shown}  pays {multiple}× the stake")
    rows.append(
        f"Symbols read from the left reel; ❔ matches any symbol; only the first matching row "
        f"pays. Return to player {float(rtp()):.2%}."
    )
    return "\n".join(rows)
