"""The wallet's messages and answers; a newcomer starts here.

A wallet is one actor per (scope, user), the only writer of that user's money records:

- ``actors/wallet.py`` (this module): the messages a wallet handles and what it answers,
  and the names under which it stores a request's answer (``Request.operation``).
- ``actors/wallet_plans.py``: each operation as a plain function from (wallet, record,
  message, settings, now) to a ``Plan`` (the new record, the writes, the answer), and
  ``apply_plans``, which writes the plans of one batch in one transaction.
- ``actors/shop.py``: the shop's shared item records, read and written inside the commit
  of a purchase or a sale, and the shop's catalogue.
- ``actors/wallet_actor.py``: the actor, which plans a mailbox batch and commits it.

A request (a message with a ``key``) is answered once: its answer is stored under the key,
with its operation's name (``operation``, spelt explicitly here so a renamed class cannot orphan
stored answers), and a repeat of the key answers it again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

WALLET_KIND = "wallet"

# Where a transfer's coins are, in the one vocabulary of payments and deliveries.
TransferStatus = Literal["credited", "returned", "pending"]

# --- messages --------------------------------------------------------------------------


@dataclass(frozen=True)
class Open:
    """Read the wallet (creating it with the starting balance on first contact)."""


@dataclass(frozen=True)
class Reward:
    operation: ClassVar[str] = "Reward"
    kind: Literal["daily", "work"]
    key: str


@dataclass(frozen=True)
class Pay:
    operation: ClassVar[str] = "Pay"
    key: str
    to_user: int
    amount: int
    reason: str


@dataclass(frozen=True)
class Credit:
    """Apply the outbox record ``transfer_id`` addressed to this wallet, once."""

    transfer_id: str


@dataclass(frozen=True)
class RefundParked:
    """Return the coins of a parked record owned by this wallet (a transfer it sent, or
    the stake of its game), once. ``by`` names who asked (an admin, or the operator's
    command line)."""

    transfer_id: str
    by: str
    kind: Literal["transfer", "game"] = "transfer"


@dataclass(frozen=True)
class Prune:
    """Forget the stored results of requests made before ``before``: a key repeated
    after that long counts as a new request. Answers how many were forgotten."""

    before: float


@dataclass(frozen=True)
class Adjust:
    operation: ClassVar[str] = "Adjust"
    key: str
    op: Literal["add", "remove", "set"]
    amount: int
    reason: str
    admin: int


@dataclass(frozen=True)
class Reset:
    operation: ClassVar[str] = "Reset"
    key: str
    reason: str
    admin: int


@dataclass(frozen=True)
class Buy:
    operation: ClassVar[str] = "Buy"
    key: str
    item_id: int
    quantity: int


@dataclass(frozen=True)
class Sell:
    operation: ClassVar[str] = "Sell"
    key: str
    item_id: int
    quantity: int


@dataclass(frozen=True)
class UseItem:
    operation: ClassVar[str] = "UseItem"
    key: str
    item_id: int


@dataclass(frozen=True)
class Wager:
    """Move ``amount`` coins into game ``game_id`` (and ``payout`` back) in ONE commit
    together with the game's own writes.

    ``game_write(txn)`` writes the game's records (its state, escrow, live index, timer,
    the house's side of an instant settlement) and may raise a typed error, which rolls
    the whole wager back. This is how a game record exists if and only if its stake is
    escrowed: the money and the record change in the same transaction. Only the game
    that owns the records builds ``game_write``.
    """

    operation: ClassVar[str] = "Wager"
    key: str
    game_id: str
    kind: str
    amount: int
    payout: int
    game_write: Callable[[Any], None]
    cooldown_seconds: float = 0.0


# --- results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WalletView:
    user: int
    balance: int
    daily_ready_at: float
    work_ready_at: float


@dataclass(frozen=True)
class RewardResult:
    kind: str
    amount: int
    balance: int
    next_ready_at: float


@dataclass(frozen=True)
class PayResult:
    """A payment. ``status`` says where the coins are: "credited" to the recipient,
    "returned" to the sender (the recipient was at the maximum balance), or "pending"
    (debited and in flight: the sender's wallet answers so, and so does a payment whose
    delivery failed and is retried). ``balance`` is the sender's after it."""

    transfer_id: str
    to_user: int
    amount: int
    balance: int
    # Last, with a default: results stored before payments had a status read as debits.
    status: TransferStatus = "pending"


@dataclass(frozen=True)
class CreditResult:
    """What became of an outbox record at its target: "credited", "returned" (it bounced
    and a refund to its sender is in flight) or "absent" (there was none)."""

    transfer_id: str
    status: Literal["credited", "returned", "absent"]
    amount: int
    balance: int


@dataclass(frozen=True)
class ParkedRefundResult:
    """The coins of a parked record (``transfer_id`` names it: a transfer id or a game
    id) back with ``user``, their owner, now at ``balance``."""

    transfer_id: str
    user: int
    amount: int
    balance: int


@dataclass(frozen=True)
class AdjustResult:
    op: str
    delta: int
    balance: int


@dataclass(frozen=True)
class ResetResult:
    balance: int
    items_removed: int


@dataclass(frozen=True)
class TradeResult:
    """A purchase or a sale: ``total`` coins for ``quantity`` of the item."""

    item_id: int
    name: str
    quantity: int
    total: int
    balance: int
    owned: int


@dataclass(frozen=True)
class WagerResult:
    game_id: str
    amount: int
    payout: int
    balance: int


@dataclass(frozen=True)
class UseResult:
    item_id: int
    name: str
    role_id: int | None
    remaining: int


# A request's stored answer is read back as the type its operation answers with. The op
# names are the stored spelling (they were once the classes' names): never change one.
RESULT_TYPES: dict[str, type[Any]] = {
    Reward.operation: RewardResult,
    Pay.operation: PayResult,
    Adjust.operation: AdjustResult,
    Reset.operation: ResetResult,
    Buy.operation: TradeResult,
    Sell.operation: TradeResult,
    UseItem.operation: UseResult,
    Wager.operation: WagerResult,
}
Request = Reward | Pay | Adjust | Reset | Buy | Sell | UseItem | Wager
