"""The casino: provably fair games whose stakes, payouts and refunds are wallet transfers.

How the parts fit:

- ``rules/``: the pure rules (draws from committed seeds, payouts, return to player); no
  trio, no storage. ``rules.play`` resolves a whole game into a ``rules.Settlement``.
- ``service``: ``Games``, the one entry for callers. It checks a bet, chooses its seeds,
  commits the stake into the game's escrow (``Games.stake``), and for instant games
  settles in that same commit; it also verifies, refunds and recovers games at boot.
- ``actor``: ``BlackjackGame``, one actor per live blackjack game, which persists every
  move and writes the settlement commit; it calls only the service's public methods.
- ``views``: what callers see (``GameView``, ``InstantResult``, ``VerifyReport``), built
  from records by pure functions.
- ``recovery``: at boot, refunds old live games and parks (``parking``) any game that
  cannot be handled, with its escrow, so no one game stops the server.
- ``records``: the stored ``GameRecord`` and its phases.
"""

from actors.games import rules
from actors.games.actor import GAME_ACTOR
from actors.games.counts import INSTANT_KINDS
from actors.games.records import (
    GAME,
    GAME_TIMER_KIND,
    LIVE,
    REFUNDED,
    SETTLED,
    GameRecord,
    settled_instant,
)
from actors.games.recovery import RecoveryReport
from actors.games.service import Games
from actors.games.views import GameView, InstantResult, VerifyReport, view_of

__all__ = [
    "GAME",
    "GAME_ACTOR",
    "GAME_TIMER_KIND",
    "INSTANT_KINDS",
    "LIVE",
    "REFUNDED",
    "SETTLED",
    "GameRecord",
    "GameView",
    "Games",
    "InstantResult",
    "RecoveryReport",
    "VerifyReport",
    "rules",
    "settled_instant",
    "view_of",
]
