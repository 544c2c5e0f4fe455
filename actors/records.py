"""The records the economy keeps, and their versioned codecs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from limits import balance_coins_ceiling
from storage.codec import RecordCodec

# Account names and transfer ids are spelt in ``actors.accounts``; records hold their text.
GAME_KINDS = ("blackjack", "coinflip", "dice", "slots", "roulette")


@dataclass
class WalletRecord:
    balance: int
    created_at: float
    daily_ready_at: float = 0.0
    work_ready_at: float = 0.0
    history_seq: int = 0
    # Game kind -> when the next game of that kind may start (per-kind cooldown).
    game_ready_at: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class HistoryEntry:
    """One side of a transfer as its account holder sees it; ``amount`` is signed."""

    transfer_id: str
    amount: int
    counterparty: str
    reason: str
    at: float
    balance: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class OutboxRecord:
    """Money debited from ``source`` and not yet credited to ``target``.

    ``source_ref`` locates the debit: the sender's history key sequence for a user, or
    the game round for a game. A refund outbox record (``refund_of`` set) is created when
    a credit bounces, and is always accepted by its target.
    """

    transfer_id: str
    scope: int
    source: str
    target: str
    amount: int
    reason: str
    at: float
    source_ref: int = 0
    refund_of: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class IdempotencyRecord:
    op: str
    result: dict[str, Any]
    at: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScopeSettings:
    """Per-scope economy settings; every field has a default a new server starts with."""

    currency_name: str = "coins"
    currency_symbol: str = "🪙"
    starting_balance: int = 100
    max_balance: int = 1_000_000_000_000
    daily_amount: int = 250
    daily_cooldown_seconds: int = 86_400
    work_min: int = 20
    work_max: int = 120
    work_cooldown_seconds: int = 3_600
    bet_min: int = 1
    bet_max: int = 1_000_000
    game_cooldown_seconds: int = 2
    # Per-kind cooldowns; -1 means "the same as game_cooldown_seconds".
    blackjack_cooldown_seconds: int = -1
    coinflip_cooldown_seconds: int = -1
    dice_cooldown_seconds: int = -1
    slots_cooldown_seconds: int = -1
    roulette_cooldown_seconds: int = -1
    extra: dict[str, Any] = field(default_factory=dict)

    def cooldown_seconds(self, kind: str) -> int:
        """The cooldown between two games of ``kind`` started by one player."""
        own: int = getattr(self, f"{kind}_cooldown_seconds", -1)
        return self.game_cooldown_seconds if own < 0 else own

    def check(self) -> list[tuple[str, str]]:
        """(field, what is wrong) for every out-of-range value."""
        problems = []
        if not 1 <= self.max_balance <= balance_coins_ceiling // 2:
            problems.append(("max_balance", f"must be between 1 and {balance_coins_ceiling // 2}"))
        if not 0 <= self.starting_balance <= self.max_balance:
            problems.append(("starting_balance", "must be between 0 and max_balance"))
        if not 0 <= self.daily_amount <= self.max_balance:
            problems.append(("daily_amount", "must be between 0 and max_balance"))
        if not 0 <= self.work_min <= self.work_max <= self.max_balance:
            problems.append(("work_max", "needs 0 <= work_min <= work_max <= max_balance"))
        for name in ("daily_cooldown_seconds", "work_cooldown_seconds", "game_cooldown_seconds"):
            if not 0 <= getattr(self, name) <= 366 * 86_400:
                problems.append((name, "must be between 0 and one year"))
        for kind in GAME_KINDS:
            name = f"{kind}_cooldown_seconds"
            if not -1 <= getattr(self, name) <= 366 * 86_400:
                problems.append((name, "must be -1 (the game default) or 0 to one year"))
        if not 1 <= self.bet_min <= self.bet_max <= self.max_balance:
            problems.append(("bet_max", "needs 1 <= bet_min <= bet_max <= max_balance"))
        if not 1 <= len(self.currency_name) <= 32:
            problems.append(("currency_name", "must be 1 to 32 characters"))
        if not 1 <= len(self.currency_symbol) <= 8:
            problems.append(("currency_symbol", "must be 1 to 8 characters"))
        return problems

    @staticmethod
    def editable() -> dict[str, str]:
        """Field name to its type name ("int" or "str"), for the config command."""
        return {f.name: str(f.type) for f in fields(ScopeSettings) if f.name != "extra"}

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("extra")
        return data


@dataclass
class ShopItem:
    item_id: int
    name: str
    price: int
    stock: int | None = None
    role_id: int | None = None
    sell_price: int | None = None
    retired: bool = False
    created_at: float = 0.0
    description: str = ""
    # The idempotency key of the request that created the item: a repeat of that request
    # answers with this item instead of refusing a duplicate name.
    created_by_key: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


WALLET = RecordCodec(WalletRecord, kind="wallet", version=1)
HISTORY = RecordCodec(HistoryEntry, kind="history", version=1)
OUTBOX = RecordCodec(OutboxRecord, kind="outbox", version=1)
IDEMPOTENCY = RecordCodec(IdempotencyRecord, kind="idempotency", version=1)
SETTINGS = RecordCodec(ScopeSettings, kind="settings", version=1)
SHOP_ITEM = RecordCodec(ShopItem, kind="shop_item", version=1)

# The value of an ``applied`` marker: what became of a transfer its target has seen.
APPLIED_CREDITED = b"credited"
APPLIED_BOUNCED = b"bounced"
