"""The wallet actor: one per (scope, user), the only writer of that user's money records.

Messages are handled a mailbox batch at a time. Each message is checked and applied to the
in-memory wallet and its writes are staged; the whole batch then becomes durable in one
group commit before any reply leaves (a crash before that restarts the actor from the
store, and every ask of the batch fails with an unknown outcome that its idempotency key
makes safe to retry). Shop operations, whose checks read shared records (stock, price),
run as their own write with the checks inside the transaction.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any, Literal

import outcome

from actors import keys
from actors.accounts import SHOP, TREASURY, system_add, user_account
from actors.context import EconomyContext
from actors.errors import (
    AlreadyRefunded,
    BalanceTooHigh,
    CroupierError,
    InsufficientFunds,
    InvalidAmount,
    ItemRetired,
    KeyReused,
    NotEnoughItems,
    NotFound,
    NotSellable,
    OnCooldown,
    OutOfStock,
    Undeliverable,
)
from actors.parked import PARKED, parked_key
from actors.records import (
    APPLIED_BOUNCED,
    APPLIED_CREDITED,
    HISTORY,
    IDEMPOTENCY,
    OUTBOX,
    SHOP_ITEM,
    WALLET,
    HistoryEntry,
    IdempotencyRecord,
    OutboxRecord,
    ScopeSettings,
    WalletRecord,
)
from actors.runtime import Actor
from storage import RecordDecodeError

WALLET_KIND = "wallet"

# --- messages --------------------------------------------------------------------------


@dataclass(frozen=True)
class Open:
    """Read the wallet (creating it with the starting balance on first contact)."""


@dataclass(frozen=True)
class Reward:
    kind: Literal["daily", "work"]
    key: str


@dataclass(frozen=True)
class Pay:
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
    key: str
    op: Literal["add", "remove", "set"]
    amount: int
    reason: str
    admin: int


@dataclass(frozen=True)
class Reset:
    key: str
    reason: str
    admin: int


@dataclass(frozen=True)
class Buy:
    key: str
    item_id: int
    quantity: int


@dataclass(frozen=True)
class Sell:
    key: str
    item_id: int
    quantity: int


@dataclass(frozen=True)
class UseItem:
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

    key: str
    game_id: str
    kind: str
    amount: int
    payout: int
    game_write: Any
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
    transfer_id: str
    to_user: int
    amount: int
    balance: int


@dataclass(frozen=True)
class CreditResult:
    transfer_id: str
    status: Literal["credited", "bounced", "absent"]
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


_RESULT_TYPES: dict[str, type[Any]] = {
    "Reward": RewardResult,
    "Pay": PayResult,
    "Adjust": AdjustResult,
    "Reset": ResetResult,
    "Buy": TradeResult,
    "Sell": TradeResult,
    "UseItem": UseResult,
    "Wager": WagerResult,
}

# Transfer-id prefix -> the bounded ``reason`` label of the transfers counter.
_TRANSFER_REASONS = {
    "open": "open",
    "daily": "daily",
    "work": "work",
    "admin": "admin",
    "reset": "admin",
}


class _Stage:
    """Writes staged by the messages of one batch, made durable together."""

    def __init__(self) -> None:
        self.ops: list[Any] = []
        self.idempotency: dict[str, IdempotencyRecord] = {}
        # Transfers credited (or bounced) by this batch: a repeat in the same batch
        # answers what happened instead of reading a store that does not show it yet.
        self.consumed: dict[str, Literal["credited", "bounced"]] = {}
        # Transfers this batch originates, by reason, counted once durable.
        self.transfers: dict[str, int] = {}

    def count(self, reason: str) -> None:
        self.transfers[reason] = self.transfers.get(reason, 0) + 1

    @property
    def dirty(self) -> bool:
        return bool(self.ops)


class Wallet(Actor):
    def __init__(self, context: EconomyContext, key: tuple[int, int]) -> None:
        self.context = context
        self.store = context.store
        self.scope, self.user = key
        # The economy refuses ids out of range before any message is sent; one here is a bug.
        assert 0 <= self.scope <= keys.u64_max and 1 <= self.user <= keys.u64_max, key
        self.key = keys.wallet_key(self.scope, self.user)
        self.account = user_account(self.user)
        self.record = WalletRecord(balance=0, created_at=0.0)
        self.indexed_balance = 0
        db = self.store.db
        self.db_wallets = db("wallets")
        self.db_system = db("system")
        self.db_leaderboard = db("leaderboard")
        self.db_history = db("history")
        self.db_idempotency = db("idempotency")
        self.db_outbox = db("outbox")
        self.db_applied = db("applied")
        self.db_shop = db("shop")
        self.db_inventory = db("inventory")
        self.db_parked = db("parked")

    # --- activation --------------------------------------------------------------------

    async def activate(self) -> None:
        with self.store.read() as txn:
            raw = txn.get(self.key, db=self.db_wallets)
        if raw is not None:
            self.record = WALLET.decode(raw)
            assert self.record.balance >= 0, (self.key, self.record.balance)
            self.indexed_balance = self.record.balance
            return
        await self._create()

    async def _create(self) -> None:
        """Open the wallet with the scope's starting balance, paid by the treasury."""
        settings = self.context.settings(self.scope)
        now = self.context.now()
        self.record = WalletRecord(balance=0, created_at=now)
        stage = _Stage()
        if settings.starting_balance > 0:
            self._move(
                stage,
                f"open:{self.scope}:{self.user}",
                settings.starting_balance,
                TREASURY,
                "opening balance",
                now,
            )
        self.indexed_balance = -1
        await self._flush(stage, force=True)

    # --- batch handling ----------------------------------------------------------------

    async def handle_batch(self, messages: Any) -> list[outcome.Outcome[Any]]:
        settings = self.context.settings(self.scope)
        now = self.context.now()
        stage = _Stage()
        results: list[outcome.Outcome[Any]] = []
        for message in messages:
            try:
                if isinstance(message, (Buy, Sell, UseItem, Wager)):
                    await self._flush(stage)
                    stage = _Stage()
                    result = await self._solo(message, now)
                else:
                    result = self._staged(message, settings, now, stage)
                results.append(outcome.Value(result))
            except CroupierError as exc:
                # A refusal is a reply: without the traceback it does not keep this
                # frame (and the batch) alive in a cycle for the garbage collector.
                results.append(outcome.Error(exc.with_traceback(None)))
        await self._flush(stage)
        return results

    def _staged(self, message: Any, settings: ScopeSettings, now: float, stage: _Stage) -> Any:
        if isinstance(message, Open):
            return self.view()
        if isinstance(message, Credit):
            return self._credit(message, settings, now, stage)
        if isinstance(message, Prune):
            return self._prune(message, stage)
        if isinstance(message, RefundParked):
            return self._refund_parked(message, now, stage)
        replay = self._replay(message, stage)
        if replay is not None:
            return replay
        if isinstance(message, Reward):
            result: Any = self._reward(message, settings, now, stage)
        elif isinstance(message, Pay):
            result = self._pay(message, settings, now, stage)
        elif isinstance(message, Adjust):
            result = self._adjust(message, settings, now, stage)
        elif isinstance(message, Reset):
            result = self._reset(message, settings, now, stage)
        else:
            raise AssertionError(f"wallet got an unknown message {message!r}")
        self._remember(message, result, now, stage)
        return result

    def view(self) -> WalletView:
        r = self.record
        return WalletView(self.user, r.balance, r.daily_ready_at, r.work_ready_at)

    # --- idempotency -------------------------------------------------------------------

    def _replay(self, message: Any, stage: _Stage) -> Any | None:
        """The stored result of an earlier request with this key, if there was one."""
        key: str = message.key
        record = stage.idempotency.get(key)
        if record is None:
            with self.store.read() as txn:
                raw = txn.get(
                    keys.idempotency_key(self.scope, self.user, key), db=self.db_idempotency
                )
            if raw is None:
                return None
            record = IDEMPOTENCY.decode(raw)
        op = type(message).__name__
        if record.op != op:
            raise KeyReused(key, record.op)
        return _RESULT_TYPES[op](**record.result)

    def _remember(self, message: Any, result: Any, now: float, stage: _Stage) -> None:
        record = IdempotencyRecord(op=type(message).__name__, result=dict(vars(result)), at=now)
        stage.idempotency[message.key] = record
        stage.ops.append(self._put_idempotency(message.key, record))

    def _prune(self, message: Prune, stage: _Stage) -> int:
        prefix = keys.wallet_key(self.scope, self.user)
        expired = []
        with self.store.read() as txn:
            cursor = txn.cursor(db=self.db_idempotency)
            if cursor.set_range(prefix):
                for key, value in cursor:
                    if not key.startswith(prefix):
                        break
                    if IDEMPOTENCY.decode(value).at < message.before:
                        expired.append(bytes(key))
        if expired:
            db = self.db_idempotency

            def forget(txn: Any) -> None:
                for key in expired:
                    txn.delete(key, db=db)

            stage.ops.append(forget)
        return len(expired)

    def _put_idempotency(self, key: str, record: IdempotencyRecord) -> Any:
        db_key = keys.idempotency_key(self.scope, self.user, key)
        value = IDEMPOTENCY.encode(record)
        db = self.db_idempotency
        return lambda txn: txn.put(db_key, value, db=db)

    # --- money movements ---------------------------------------------------------------

    def _move(
        self, stage: _Stage, transfer_id: str, delta: int, system: str, reason: str, now: float
    ) -> None:
        """Stage a transfer between this wallet and a system account (``delta`` signed)."""
        self.record.balance += delta
        assert self.record.balance >= 0, (self.key, self.record.balance)
        self._stage_history(stage, transfer_id, delta, system, reason, now)
        stage.count(_TRANSFER_REASONS[transfer_id.split(":", 1)[0]])
        scope, db = self.scope, self.db_system
        stage.ops.append(lambda txn: system_add(txn, db, scope, system, -delta))

    def _stage_history(
        self,
        stage: _Stage,
        transfer_id: str,
        delta: int,
        counterparty: str,
        reason: str,
        now: float,
    ) -> int:
        sequence = self.record.history_seq
        self.record.history_seq += 1
        entry = HistoryEntry(transfer_id, delta, counterparty, reason, now, self.record.balance)
        key = keys.history_key(self.scope, self.user, sequence)
        value = HISTORY.encode(entry)
        db = self.db_history
        stage.ops.append(lambda txn: txn.put(key, value, db=db))
        return sequence

    def _check_room(self, amount: int, settings: ScopeSettings) -> None:
        if self.record.balance + amount > settings.max_balance:
            raise BalanceTooHigh(self.record.balance, amount, settings.max_balance)

    def _check_funds(self, amount: int) -> None:
        if amount > self.record.balance:
            raise InsufficientFunds(self.record.balance, amount)

    def _reward(
        self, message: Reward, settings: ScopeSettings, now: float, stage: _Stage
    ) -> RewardResult:
        record = self.record
        ready_at = record.daily_ready_at if message.kind == "daily" else record.work_ready_at
        if now < ready_at:
            raise OnCooldown(message.kind, ready_at, now)
        transfer_id = f"{message.kind}:{self.scope}:{self.user}:{message.key}"
        if message.kind == "daily":
            amount = settings.daily_amount
            next_ready = now + settings.daily_cooldown_seconds
        else:
            # Seeded by the transfer id so the amount is a pure function of the request.
            amount = random.Random(transfer_id).randint(settings.work_min, settings.work_max)
            next_ready = now + settings.work_cooldown_seconds
        self._check_room(amount, settings)
        if message.kind == "daily":
            record.daily_ready_at = next_ready
        else:
            record.work_ready_at = next_ready
        if amount:
            self._move(stage, transfer_id, amount, TREASURY, f"{message.kind} reward", now)
        return RewardResult(message.kind, amount, record.balance, next_ready)

    def _pay(self, message: Pay, settings: ScopeSettings, now: float, stage: _Stage) -> PayResult:
        if not 1 <= message.amount <= settings.max_balance:
            raise InvalidAmount(message.amount, maximum=settings.max_balance)
        self._check_funds(message.amount)
        transfer_id = f"pay:{self.scope}:{self.user}:{message.key}"
        target = user_account(message.to_user)
        self.record.balance -= message.amount
        sequence = self._stage_history(
            stage, transfer_id, -message.amount, target, message.reason, now
        )
        record = OutboxRecord(
            transfer_id=transfer_id,
            scope=self.scope,
            source=self.account,
            target=target,
            amount=message.amount,
            reason=message.reason,
            at=now,
            source_ref=sequence,
        )
        key, value, db = transfer_id.encode(), OUTBOX.encode(record), self.db_outbox
        stage.ops.append(lambda txn: txn.put(key, value, db=db))
        stage.count("pay")
        return PayResult(transfer_id, message.to_user, message.amount, self.record.balance)

    def _credit(
        self, message: Credit, settings: ScopeSettings, now: float, stage: _Stage
    ) -> CreditResult:
        transfer_id = message.transfer_id
        balance = self.record.balance
        done = stage.consumed.get(transfer_id)
        if done is not None:
            return CreditResult(transfer_id, done, 0, balance)
        tid = transfer_id.encode()
        applied = keys.applied_key(self.scope, self.user, tid)
        with self.store.read() as txn:
            raw = txn.get(tid, db=self.db_outbox)
            marker = txn.get(applied, db=self.db_applied) if raw is None else None
        if raw is None:
            if marker == APPLIED_CREDITED:
                return CreditResult(transfer_id, "credited", 0, balance)
            if marker == APPLIED_BOUNCED:
                return CreditResult(transfer_id, "bounced", 0, balance)
            return CreditResult(transfer_id, "absent", 0, balance)
        try:
            record = OUTBOX.decode(raw)
        except RecordDecodeError as exc:
            raise Undeliverable(transfer_id, f"its record cannot be read ({exc})") from None
        if record.target != self.account or record.scope != self.scope:
            raise Undeliverable(
                transfer_id, f"it is addressed to {record.target} in scope {record.scope}"
            )
        if not isinstance(record.amount, int) or record.amount <= 0:
            raise Undeliverable(transfer_id, f"its amount {record.amount!r} is not positive")
        db_outbox, db_applied = self.db_outbox, self.db_applied
        # Only a payment from another user can bounce. Refunds and game payouts are the
        # player's own money coming back and always land, even past the maximum balance
        # (it is at most half the balance ceiling, so no payout can overflow).
        fits = balance + record.amount <= settings.max_balance
        if not fits and not record.refund_of and record.source.startswith("user:"):
            # The money goes back where it came from, as a new transfer in flight.
            refund = dataclasses.replace(
                record,
                transfer_id=f"{transfer_id}/refund",
                source=self.account,
                target=record.source,
                reason=f"returned: recipient at the maximum balance ({record.reason})",
                at=now,
                source_ref=0,
                refund_of=transfer_id,
            )
            refund_key, refund_value = refund.transfer_id.encode(), OUTBOX.encode(refund)

            def bounce(txn: Any) -> None:
                txn.delete(tid, db=db_outbox)
                txn.put(refund_key, refund_value, db=db_outbox)
                txn.put(applied, APPLIED_BOUNCED, db=db_applied)

            stage.ops.append(bounce)
            stage.consumed[transfer_id] = "bounced"
            return CreditResult(transfer_id, "bounced", record.amount, balance)
        self.record.balance += record.amount
        self._stage_history(stage, transfer_id, record.amount, record.source, record.reason, now)
        if record.source.startswith("game:"):
            stage.count("game")

        def credit(txn: Any) -> None:
            txn.delete(tid, db=db_outbox)
            txn.put(applied, APPLIED_CREDITED, db=db_applied)

        stage.ops.append(credit)
        stage.consumed[transfer_id] = "credited"
        return CreditResult(transfer_id, "credited", record.amount, self.record.balance)

    def _refund_parked(
        self, message: RefundParked, now: float, stage: _Stage
    ) -> ParkedRefundResult:
        """The parked record is marked refunded in the same commit as the credit, and
        this actor is its only writer after parking, so the coins come back once."""
        ident, kind = message.transfer_id, message.kind
        if f"parked:{kind}:{ident}" in stage.consumed:
            raise AlreadyRefunded(ident, now)
        key = parked_key(kind, ident)
        with self.store.read() as txn:
            raw = txn.get(key, db=self.db_parked)
        if raw is None:
            raise NotFound(f"parked {kind}", ident)
        parked = PARKED.decode(raw)
        if parked.refunded:
            raise AlreadyRefunded(ident, parked.refunded_at)
        assert parked.owner == self.account and parked.scope == self.scope, parked
        assert parked.amount > 0, parked
        # Like every refund, the owner's own money lands even past the maximum balance.
        self.record.balance += parked.amount
        if kind == "transfer":
            history_id, party = f"{ident}/parked-refund", parked.target
            reason = f"returned: the transfer to {parked.target} could not be delivered"
        else:
            history_id, party = f"refund:{ident}/parked", parked.source
            reason = "returned: the stake of a game that could not be recovered"
        self._stage_history(stage, history_id, parked.amount, party, reason, now)
        refunded = dataclasses.replace(parked, refunded_at=now, refunded_by=message.by)
        value, db = PARKED.encode(refunded), self.db_parked
        stage.ops.append(lambda txn: txn.put(key, value, db=db))
        stage.consumed[f"parked:{kind}:{ident}"] = "credited"
        return ParkedRefundResult(ident, self.user, parked.amount, self.record.balance)

    def _adjust(
        self, message: Adjust, settings: ScopeSettings, now: float, stage: _Stage
    ) -> AdjustResult:
        low = 0 if message.op == "set" else 1
        if not low <= message.amount <= settings.max_balance:
            raise InvalidAmount(message.amount, maximum=settings.max_balance)
        if message.op == "add":
            delta = message.amount
            self._check_room(delta, settings)
        elif message.op == "remove":
            self._check_funds(message.amount)
            delta = -message.amount
        else:
            delta = message.amount - self.record.balance
        transfer_id = f"admin:{self.scope}:{self.user}:{message.key}"
        reason = f"admin {message.op} by {message.admin}: {message.reason}"
        if delta:
            self._move(stage, transfer_id, delta, TREASURY, reason, now)
        return AdjustResult(message.op, delta, self.record.balance)

    def _reset(
        self, message: Reset, settings: ScopeSettings, now: float, stage: _Stage
    ) -> ResetResult:
        delta = settings.starting_balance - self.record.balance
        transfer_id = f"reset:{self.scope}:{self.user}:{message.key}"
        reason = f"reset by {message.admin}: {message.reason}"
        if delta:
            self._move(stage, transfer_id, delta, TREASURY, reason, now)
        self.record.daily_ready_at = 0.0
        self.record.work_ready_at = 0.0
        prefix = keys.wallet_key(self.scope, self.user)
        with self.store.read() as txn:
            cursor = txn.cursor(db=self.db_inventory)
            owned = []
            if cursor.set_range(prefix):
                for key in cursor.iternext(values=False):
                    if not key.startswith(prefix):
                        break
                    owned.append(bytes(key))
        db = self.db_inventory

        def clear(txn: Any) -> None:
            for key in owned:
                txn.delete(key, db=db)

        stage.ops.append(clear)
        return ResetResult(self.record.balance, len(owned))

    # --- shop: checks inside the write transaction -------------------------------------

    async def _solo(self, message: Buy | Sell | UseItem | Wager, now: float) -> Any:
        stage = _Stage()
        replay = self._replay(message, stage)
        if replay is not None:
            return replay
        record = dataclasses.replace(self.record)
        settings = self.context.settings(self.scope)
        write = {
            Buy: self._buy_txn,
            Sell: self._sell_txn,
            UseItem: self._use_txn,
            Wager: self._wager_txn,
        }[type(message)]
        op = type(message).__name__
        idem_key = keys.idempotency_key(self.scope, self.user, message.key)

        def apply(txn: Any) -> tuple[Any, WalletRecord]:
            fresh = dataclasses.replace(record)
            result = write(txn, message, fresh, settings, now)  # type: ignore[operator]
            remembered = IdempotencyRecord(op=op, result=dict(vars(result)), at=now)
            txn.put(idem_key, IDEMPOTENCY.encode(remembered), db=self.db_idempotency)
            self._put_wallet(txn, fresh)
            return result, fresh

        result, fresh = await self.store.write(apply)
        self.record = fresh
        self.indexed_balance = fresh.balance
        if isinstance(message, (Buy, Sell)) and result.total:
            self.context.count_transfers("shop")
        elif isinstance(message, Wager):
            self.context.count_transfers("game", bool(result.amount) + bool(result.payout))
        return result

    def _item_in_txn(self, txn: Any, item_id: int) -> Any:
        raw = txn.get(keys.item_key(self.scope, item_id), db=self.db_shop)
        if raw is None:
            raise NotFound("item", item_id)
        return SHOP_ITEM.decode(raw)

    def _put_item(self, txn: Any, item: Any) -> None:
        txn.put(keys.item_key(self.scope, item.item_id), SHOP_ITEM.encode(item), db=self.db_shop)

    def _owned_in_txn(self, txn: Any, item_id: int) -> int:
        raw = txn.get(keys.inventory_key(self.scope, self.user, item_id), db=self.db_inventory)
        return 0 if raw is None else int.from_bytes(raw, "big")

    def _set_owned(self, txn: Any, item_id: int, count: int) -> None:
        key = keys.inventory_key(self.scope, self.user, item_id)
        if count:
            txn.put(key, count.to_bytes(8, "big"), db=self.db_inventory)
        else:
            txn.delete(key, db=self.db_inventory)

    def _history_in_txn(
        self, txn: Any, record: WalletRecord, tid: str, delta: int, party: str, why: str, now: float
    ) -> None:
        entry = HistoryEntry(tid, delta, party, why, now, record.balance)
        key = keys.history_key(self.scope, self.user, record.history_seq)
        record.history_seq += 1
        txn.put(key, HISTORY.encode(entry), db=self.db_history)

    def _buy_txn(
        self, txn: Any, message: Buy, record: WalletRecord, settings: ScopeSettings, now: float
    ) -> TradeResult:
        item = self._item_in_txn(txn, message.item_id)
        if item.retired:
            raise ItemRetired(item.name)
        if item.stock is not None and item.stock < message.quantity:
            raise OutOfStock(item.name, item.stock, message.quantity)
        total = item.price * message.quantity
        if total > record.balance:
            raise InsufficientFunds(record.balance, total)
        owned = self._owned_in_txn(txn, item.item_id) + message.quantity
        if owned > self.context.limits.inventory_item_count_max:
            raise InvalidAmount(message.quantity, field="quantity")
        if item.stock is not None:
            item.stock -= message.quantity
            txn.put(
                keys.item_key(self.scope, item.item_id), SHOP_ITEM.encode(item), db=self.db_shop
            )
        self._set_owned(txn, item.item_id, owned)
        record.balance -= total
        if total:
            system_add(txn, self.db_system, self.scope, SHOP, total)
            tid = f"buy:{self.scope}:{self.user}:{message.key}"
            why = f"bought {message.quantity} x {item.name}"
            self._history_in_txn(txn, record, tid, -total, SHOP, why, now)
        return TradeResult(item.item_id, item.name, message.quantity, total, record.balance, owned)

    def _sell_txn(
        self, txn: Any, message: Sell, record: WalletRecord, settings: ScopeSettings, now: float
    ) -> TradeResult:
        item = self._item_in_txn(txn, message.item_id)
        if item.sell_price is None:
            raise NotSellable(item.name)
        owned = self._owned_in_txn(txn, item.item_id)
        if owned < message.quantity:
            raise NotEnoughItems(item.name, owned, message.quantity)
        total = item.sell_price * message.quantity
        if record.balance + total > settings.max_balance:
            raise BalanceTooHigh(record.balance, total, settings.max_balance)
        if item.stock is not None:
            item.stock += message.quantity
            txn.put(
                keys.item_key(self.scope, item.item_id), SHOP_ITEM.encode(item), db=self.db_shop
            )
        self._set_owned(txn, item.item_id, owned - message.quantity)
        record.balance += total
        if total:
            system_add(txn, self.db_system, self.scope, SHOP, -total)
            tid = f"sell:{self.scope}:{self.user}:{message.key}"
            why = f"sold {message.quantity} x {item.name}"
            self._history_in_txn(txn, record, tid, total, SHOP, why, now)
        return TradeResult(
            item.item_id,
            item.name,
            message.quantity,
            total,
            record.balance,
            owned - message.quantity,
        )

    def _use_txn(
        self, txn: Any, message: UseItem, record: WalletRecord, settings: ScopeSettings, now: float
    ) -> UseResult:
        item = self._item_in_txn(txn, message.item_id)
        owned = self._owned_in_txn(txn, item.item_id)
        if owned < 1:
            raise NotEnoughItems(item.name, owned, 1)
        self._set_owned(txn, item.item_id, owned - 1)
        return UseResult(item.item_id, item.name, item.role_id, owned - 1)

    def _wager_txn(
        self, txn: Any, message: Wager, record: WalletRecord, settings: ScopeSettings, now: float
    ) -> WagerResult:
        if message.cooldown_seconds:
            ready_at = record.game_ready_at.get(message.kind, 0.0)
            if now < ready_at:
                raise OnCooldown(message.kind, ready_at, now)
            record.game_ready_at = {
                **record.game_ready_at,
                message.kind: now + message.cooldown_seconds,
            }
        if message.amount > record.balance:
            raise InsufficientFunds(record.balance, message.amount)
        party = f"game:{message.game_id}"
        tid = f"wager:{message.game_id}:{message.key}"
        if message.amount:
            record.balance -= message.amount
            self._history_in_txn(
                txn, record, tid, -message.amount, party, f"{message.kind} stake", now
            )
        if message.payout:
            if record.balance + message.payout > settings.max_balance:
                raise BalanceTooHigh(record.balance, message.payout, settings.max_balance)
            record.balance += message.payout
            self._history_in_txn(
                txn, record, tid, message.payout, party, f"{message.kind} payout", now
            )
        message.game_write(txn)
        return WagerResult(message.game_id, message.amount, message.payout, record.balance)

    # --- durability --------------------------------------------------------------------

    def _put_wallet(self, txn: Any, record: WalletRecord) -> None:
        """Write the wallet record and move its leaderboard entry to its balance."""
        self._put_wallet_value(txn, record.balance, WALLET.encode(record))

    def _put_wallet_value(self, txn: Any, balance: int, value: bytes) -> None:
        assert balance >= 0, (self.key, balance)
        txn.put(self.key, value, db=self.db_wallets)
        if balance != self.indexed_balance:
            if self.indexed_balance >= 0:
                old = keys.leaderboard_key(self.scope, self.indexed_balance, self.user)
                txn.delete(old, db=self.db_leaderboard)
            new = keys.leaderboard_key(self.scope, balance, self.user)
            txn.put(new, b"", db=self.db_leaderboard)

    async def _flush(self, stage: _Stage, *, force: bool = False) -> None:
        if not stage.dirty and not force:
            return
        ops = list(stage.ops)
        # Encoded now: the actor waits for this commit before it changes its record again.
        balance, value = self.record.balance, WALLET.encode(self.record)

        def apply(txn: Any) -> None:
            for op in ops:
                op(txn)
            self._put_wallet_value(txn, balance, value)

        await self.store.write(apply)
        self.indexed_balance = balance
        stage.ops.clear()
        for reason, count in stage.transfers.items():
            self.context.count_transfers(reason, count)
        stage.transfers.clear()
