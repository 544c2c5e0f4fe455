"""What every game returns when it ends (its ``Settlement``), and the stake bound every
game shares.

A ``Settlement`` is the rules' result; its ``to_record()`` form is what a game record
stores as its ``outcome`` (a stored key kept as it is, so records already written verify).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from actors.errors import InvalidAmount
from limits import payout_multiple_max, stake_coins_max

# A record is the msgpack-friendly form of a rules object: only int, str, bool, None,
# lists and dicts with str keys inside.
Record = dict[str, Any]

Result = Literal["win", "loss", "push"]


def check_stake(stake: object) -> int:
    """Return ``stake`` if it is a whole number of coins a game accepts, else raise."""
    if isinstance(stake, bool) or not isinstance(stake, int) or not 0 < stake <= stake_coins_max:
        raise InvalidAmount(stake, field="stake", maximum=stake_coins_max)
    return stake


@dataclass(frozen=True)
class Settlement:
    """The settled result of one game.

    ``payout`` is every coin returned to the player, stake included (0 on a loss).
    ``result`` compares it with the coins staked: more is a win, the same a push.
    """

    result: Result
    payout: int
    detail: Record
    text: str

    @classmethod
    def of(cls, staked: int, payout: int, detail: Record, summary: str) -> Settlement:
        """Build the settlement of a game that staked ``staked`` and pays back ``payout``."""
        assert staked > 0 and 0 <= payout <= staked * payout_multiple_max
        if payout > staked:
            return cls(
                "win", payout, detail, f"{summary} — you win {payout - staked} (paid {payout})."
            )
        if payout == staked:
            return cls("push", payout, detail, f"{summary} — push, your {staked} is returned.")
        return cls("loss", payout, detail, f"{summary} — you lose {staked - payout}.")

    def to_record(self) -> Record:
        return {
            "outcome": self.result,
            "payout": self.payout,
            "detail": self.detail,
            "text": self.text,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Settlement:
        result = record["outcome"]
        assert result in ("win", "loss", "push"), result
        return cls(
            cast(Result, result),
            int(record["payout"]),
            dict(record["detail"]),
            str(record["text"]),
        )
