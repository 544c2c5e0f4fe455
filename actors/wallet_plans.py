"""Each wallet operation as a plain function: (wallet, record, message, settings, now) ->
``Plan``, the record after it, the writes it makes and its answer.

A plan function reads nothing and writes nothing: it is given the wallet's record (and,
for the operations that need one, the stored record they act on, read by the actor) and
returns what to write. It refuses with a typed error before anything is written. The
wallet actor plans every message of a mailbox batch in turn, each from the record the
previous one left, and ``apply_plans`` writes them all in one commit. The storage floor
benchmark writes a payment with the same two calls, ``plan_pay`` then ``apply_plans``.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from actors import keys
from actors.accounts import TREASURY, Account, TransferId, system_add, user_account
from actors.errors import (
    AlreadyRefunded,
    BalanceTooHigh,
    InsufficientFunds,
    InvalidAmount,
    OnCooldown,
    Undeliverable,
)
from actors.parked import PARKED, ParkedRecord, parked_key
from actors.records import (
    APPLIED_BOUNCED,
    APPLIED_CREDITED,
    HISTORY,
    IDEMPOTENCY,
    OUTBOX,
    WALLET,
    HistoryEntry,
    IdempotencyRecord,
    OutboxRecord,
    ScopeSettings,
    WalletRecord,
)
from actors.wallet import (
    Adjust,
    AdjustResult,
    Credit,
    CreditResult,
    ParkedRefundResult,
    Pay,
    PayResult,
    RefundParked,
    Request,
    Reset,
    ResetResult,
    Reward,
    RewardResult,
    Wager,
    WagerResult,
)
from limits import balance_coins_ceiling
from storage import Store

R = TypeVar("R")


@dataclass(frozen=True)
class WalletId:
    """Whose wallet: its scope and user."""

    scope: int
    user: int

    @property
    def account(self) -> str:
        return user_account(self.user)

    @property
    def key(self) -> bytes:
        return keys.wallet_key(self.scope, self.user)


# --- writes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Put:
    db: str
    key: bytes
    value: bytes


@dataclass(frozen=True)
class Delete:
    db: str
    key: bytes


@dataclass(frozen=True)
class SystemAdd:
    """Add ``delta`` to a system account of the wallet's scope."""

    account: str
    delta: int


# A game's own writes (``Wager.game_write``), made in the wager's commit.
GameWrite = Callable[[Any], None]
Write = Put | Delete | SystemAdd | GameWrite


@dataclass(frozen=True)
class Plan(Generic[R]):
    """One operation: the wallet ``record`` after it, its ``writes`` besides the wallet
    record, its ``result``, and the ``transfers`` it makes (the transfers counter's
    reasons, counted once the commit is durable)."""

    record: WalletRecord
    writes: tuple[Write, ...]
    result: R
    transfers: tuple[str, ...] = ()


def check_record(record: WalletRecord) -> WalletRecord:
    """Assert what every wallet record holds, on the way into the store and out of it."""
    assert isinstance(record.balance, int), record
    # Below zero is a bug; past ``max_balance`` is not (refunds and payouts land past it,
    # and a scope's maximum may be lowered), but past the storage ceiling is.
    assert 0 <= record.balance <= balance_coins_ceiling, record.balance
    assert record.history_seq >= 0, record.history_seq
    return record


class Draft:
    """The record and writes of one plan while it is built."""

    def __init__(self, wallet: WalletId, record: WalletRecord, now: float) -> None:
        self.wallet, self.now = wallet, now
        self.record = dataclasses.replace(record)
        self.writes: list[Write] = []
        self.transfers: list[str] = []

    def history(self, transfer_id: TransferId, delta: int, party: str, reason: str) -> int:
        """Change the balance by ``delta`` and write the history entry saying so; return
        the entry's sequence number."""
        record = self.record
        record.balance += delta
        assert record.balance >= 0, (self.wallet, record.balance)
        sequence = record.history_seq
        record.history_seq += 1
        entry = HistoryEntry(str(transfer_id), delta, party, reason, self.now, record.balance)
        key = keys.history_key(self.wallet.scope, self.wallet.user, sequence)
        self.writes.append(Put("history", key, HISTORY.encode(entry)))
        return sequence

    def move(self, transfer_id: TransferId, delta: int, system: str, why: str, label: str) -> None:
        """A transfer between this wallet and a system account (``delta`` signed), counted
        under the transfers counter's reason ``label``."""
        self.history(transfer_id, delta, system, why)
        self.writes.append(SystemAdd(system, -delta))
        self.transfers.append(label)

    def plan(self, result: R) -> Plan[R]:
        return Plan(self.record, tuple(self.writes), result, tuple(self.transfers))

    def answer(self, message: Request, result: R) -> Plan[R]:
        """The plan of a request: its answer is stored under its key, with its op."""
        remembered = IdempotencyRecord(op=message.operation, result=dict(vars(result)), at=self.now)
        key = keys.idempotency_key(self.wallet.scope, self.wallet.user, message.key)
        self.writes.append(Put("idempotency", key, IDEMPOTENCY.encode(remembered)))
        return self.plan(result)


def _check_room(record: WalletRecord, amount: int, settings: ScopeSettings) -> None:
    if record.balance + amount > settings.max_balance:
        raise BalanceTooHigh(record.balance, amount, settings.max_balance)


def _check_funds(record: WalletRecord, amount: int) -> None:
    if amount > record.balance:
        raise InsufficientFunds(record.balance, amount)


# --- the wallet's own operations -------------------------------------------------------


def plan_open(wallet: WalletId, settings: ScopeSettings, now: float) -> Plan[None]:
    """A new wallet, with the scope's starting balance paid by the treasury."""
    draft = Draft(wallet, WalletRecord(balance=0, created_at=now), now)
    if settings.starting_balance > 0:
        opening = TransferId.opening(wallet.scope, wallet.user)
        draft.move(opening, settings.starting_balance, TREASURY, "opening balance", "open")
    return draft.plan(None)


def plan_reward(
    wallet: WalletId, record: WalletRecord, message: Reward, settings: ScopeSettings, now: float
) -> Plan[RewardResult]:
    daily = message.kind == "daily"
    ready_at = record.daily_ready_at if daily else record.work_ready_at
    if now < ready_at:
        raise OnCooldown(message.kind, ready_at, now)
    transfer = TransferId.of_request(message.kind, wallet.scope, wallet.user, message.key)
    if daily:
        amount = settings.daily_amount
        next_ready = now + settings.daily_cooldown_seconds
    else:
        # Seeded by the transfer id so the amount is a pure function of the request.
        amount = random.Random(str(transfer)).randint(settings.work_min, settings.work_max)
        next_ready = now + settings.work_cooldown_seconds
    _check_room(record, amount, settings)
    draft = Draft(wallet, record, now)
    if daily:
        draft.record.daily_ready_at = next_ready
    else:
        draft.record.work_ready_at = next_ready
    if amount:
        draft.move(transfer, amount, TREASURY, f"{message.kind} reward", message.kind)
    return draft.answer(
        message, RewardResult(message.kind, amount, draft.record.balance, next_ready)
    )


def plan_pay(
    wallet: WalletId, record: WalletRecord, message: Pay, settings: ScopeSettings, now: float
) -> Plan[PayResult]:
    """The sender's side of a payment: the debit, its history entry and the outbox record
    the receiver's wallet applies (``plan_credit``), in one commit."""
    # The economy refuses amounts below one before asking; the scope's maximum only it
    # and the wallet know, and the wallet is the last to see the settings.
    assert isinstance(message.amount, int) and message.amount >= 1, message
    if message.amount > settings.max_balance:
        raise InvalidAmount(message.amount, maximum=settings.max_balance)
    _check_funds(record, message.amount)
    transfer = TransferId.of_request("pay", wallet.scope, wallet.user, message.key)
    target = user_account(message.to_user)
    draft = Draft(wallet, record, now)
    sequence = draft.history(transfer, -message.amount, target, message.reason)
    outbox = OutboxRecord(
        transfer_id=str(transfer),
        scope=wallet.scope,
        source=wallet.account,
        target=target,
        amount=message.amount,
        reason=message.reason,
        at=now,
        source_ref=sequence,
    )
    draft.writes.append(Put("outbox", str(transfer).encode(), OUTBOX.encode(outbox)))
    draft.transfers.append("pay")
    result = PayResult(str(transfer), message.to_user, message.amount, draft.record.balance)
    return draft.answer(message, result)


def _check_deliverable(wallet: WalletId, transfer_id: str, outbox: OutboxRecord) -> None:
    """Refuse an outbox record this wallet cannot apply (it was read from the store)."""
    if outbox.target != wallet.account or outbox.scope != wallet.scope:
        raise Undeliverable(
            transfer_id, f"it is addressed to {outbox.target} in scope {outbox.scope}"
        )
    if not isinstance(outbox.amount, int) or outbox.amount <= 0:
        raise Undeliverable(transfer_id, f"its amount {outbox.amount!r} is not positive")


def plan_credit(
    wallet: WalletId,
    record: WalletRecord,
    message: Credit,
    settings: ScopeSettings,
    now: float,
    outbox: OutboxRecord,
) -> Plan[CreditResult]:
    """The receiver's side: credit the outbox record ``outbox`` and delete it, or, when
    a member's payment would pass the maximum balance, turn it into a refund."""
    _check_deliverable(wallet, message.transfer_id, outbox)
    tid = message.transfer_id.encode()
    applied = keys.applied_key(wallet.scope, wallet.user, tid)
    draft = Draft(wallet, record, now)
    draft.writes.append(Delete("outbox", tid))
    # Only a payment from another user can bounce. Refunds and game payouts are the
    # player's own money coming back and always land, even past the maximum balance
    # (it is at most half the balance ceiling, so no payout can overflow).
    source = Account.parse(outbox.source)
    fits = record.balance + outbox.amount <= settings.max_balance
    if not fits and not outbox.refund_of and source.kind == "user":
        # The money goes back where it came from, as a new transfer in flight.
        refund = dataclasses.replace(
            outbox,
            transfer_id=str(TransferId.parse(message.transfer_id).returned()),
            source=wallet.account,
            target=outbox.source,
            reason=f"returned: recipient at the maximum balance ({outbox.reason})",
            at=now,
            source_ref=0,
            refund_of=message.transfer_id,
        )
        draft.writes.append(Put("outbox", refund.transfer_id.encode(), OUTBOX.encode(refund)))
        draft.writes.append(Put("applied", applied, APPLIED_BOUNCED))
        return draft.plan(
            CreditResult(message.transfer_id, "returned", outbox.amount, record.balance)
        )
    draft.history(
        TransferId.parse(message.transfer_id), outbox.amount, outbox.source, outbox.reason
    )
    draft.writes.append(Put("applied", applied, APPLIED_CREDITED))
    if source.kind == "game":
        draft.transfers.append("game")
    result = CreditResult(message.transfer_id, "credited", outbox.amount, draft.record.balance)
    return draft.plan(result)


def plan_refund_parked(
    wallet: WalletId,
    record: WalletRecord,
    message: RefundParked,
    settings: ScopeSettings,
    now: float,
    parked: ParkedRecord,
) -> Plan[ParkedRefundResult]:
    """The parked record is marked refunded in the same commit as the credit, and this
    wallet is its only writer after parking, so the coins come back once."""
    if parked.refunded:
        raise AlreadyRefunded(message.transfer_id, parked.refunded_at)
    assert parked.owner == wallet.account and parked.scope == wallet.scope, parked
    assert parked.amount > 0, parked
    ident = message.transfer_id
    if message.kind == "transfer":
        history_id, party = TransferId.parse(ident).parked_refund(), parked.target
        reason = f"returned: the transfer to {parked.target} could not be delivered"
    else:
        history_id, party = TransferId.game_refund(ident).parked_stake_refund(), parked.source
        reason = "returned: the stake of a game that could not be recovered"
    draft = Draft(wallet, record, now)
    # Like every refund, the owner's own money lands even past the maximum balance.
    draft.history(history_id, parked.amount, party, reason)
    refunded = dataclasses.replace(parked, refunded_at=now, refunded_by=message.by)
    draft.writes.append(
        Put("parked", parked_key(message.kind, message.transfer_id), PARKED.encode(refunded))
    )
    result = ParkedRefundResult(ident, wallet.user, parked.amount, draft.record.balance)
    return draft.plan(result)


def plan_adjust(
    wallet: WalletId, record: WalletRecord, message: Adjust, settings: ScopeSettings, now: float
) -> Plan[AdjustResult]:
    # The economy refuses amounts below the op's least; the maximum is the scope's.
    low = 0 if message.op == "set" else 1
    assert isinstance(message.amount, int) and message.amount >= low, message
    if message.amount > settings.max_balance:
        raise InvalidAmount(message.amount, maximum=settings.max_balance)
    if message.op == "add":
        delta = message.amount
        _check_room(record, delta, settings)
    elif message.op == "remove":
        _check_funds(record, message.amount)
        delta = -message.amount
    else:
        delta = message.amount - record.balance
    draft = Draft(wallet, record, now)
    if delta:
        transfer = TransferId.of_request("admin", wallet.scope, wallet.user, message.key)
        why = f"admin {message.op} by {message.admin}: {message.reason}"
        draft.move(transfer, delta, TREASURY, why, "admin")
    return draft.answer(message, AdjustResult(message.op, delta, draft.record.balance))


def plan_reset(
    wallet: WalletId,
    record: WalletRecord,
    message: Reset,
    settings: ScopeSettings,
    now: float,
    inventory: Sequence[bytes],
) -> Plan[ResetResult]:
    """Back to the starting balance, no cooldowns and no items (``inventory`` holds the
    keys of the wallet's inventory entries)."""
    delta = settings.starting_balance - record.balance
    draft = Draft(wallet, record, now)
    if delta:
        transfer = TransferId.of_request("reset", wallet.scope, wallet.user, message.key)
        draft.move(
            transfer, delta, TREASURY, f"reset by {message.admin}: {message.reason}", "admin"
        )
    draft.record.daily_ready_at = 0.0
    draft.record.work_ready_at = 0.0
    draft.writes.extend(Delete("inventory", key) for key in inventory)
    return draft.answer(message, ResetResult(draft.record.balance, len(inventory)))


def plan_prune(
    wallet: WalletId, record: WalletRecord, expired: Sequence[bytes], now: float
) -> Plan[int]:
    """Forget the stored answers under the idempotency keys ``expired``."""
    draft = Draft(wallet, record, now)
    draft.writes.extend(Delete("idempotency", key) for key in expired)
    return draft.plan(len(expired))


def plan_wager(
    wallet: WalletId, record: WalletRecord, message: Wager, settings: ScopeSettings, now: float
) -> Plan[WagerResult]:
    """A stake into a game (and an instant game's payout back) with the game's writes."""
    draft = Draft(wallet, record, now)
    if message.cooldown_seconds:
        ready_at = record.game_ready_at.get(message.kind, 0.0)
        if now < ready_at:
            raise OnCooldown(message.kind, ready_at, now)
        draft.record.game_ready_at = {
            **record.game_ready_at,
            message.kind: now + message.cooldown_seconds,
        }
    _check_funds(record, message.amount)
    party = str(Account.game(message.game_id))
    transfer = TransferId.wager(message.game_id, message.key)
    if message.amount:
        draft.history(transfer, -message.amount, party, f"{message.kind} stake")
        draft.transfers.append("game")
    if message.payout:
        _check_room(draft.record, message.payout, settings)
        draft.history(transfer, message.payout, party, f"{message.kind} payout")
        draft.transfers.append("game")
    draft.writes.append(message.game_write)
    result = WagerResult(message.game_id, message.amount, message.payout, draft.record.balance)
    return draft.answer(message, result)


# --- the commit ------------------------------------------------------------------------


def apply_plans(
    txn: Any, store: Store, wallet: WalletId, plans: Sequence[Plan[Any]], indexed_balance: int
) -> None:
    """Write the plans of one batch, in order, then the wallet record as the last one
    left it, moving its leaderboard entry from ``indexed_balance`` (-1: it has none).

    Runs inside the writer's transaction; it changes no state of the actor, so the
    writer may run it again (it does when another request of its batch fails)."""
    assert plans, wallet
    db = store.db
    for plan in plans:
        for write in plan.writes:
            if isinstance(write, Put):
                txn.put(write.key, write.value, db=db(write.db))
            elif isinstance(write, Delete):
                txn.delete(write.key, db=db(write.db))
            elif isinstance(write, SystemAdd):
                system_add(txn, db("system"), wallet.scope, write.account, write.delta)
            else:
                write(txn)
    record = check_record(plans[-1].record)
    txn.put(wallet.key, WALLET.encode(record), db=db("wallets"))
    if record.balance != indexed_balance:
        board = db("leaderboard")
        if indexed_balance >= 0:
            txn.delete(keys.leaderboard_key(wallet.scope, indexed_balance, wallet.user), db=board)
        txn.put(keys.leaderboard_key(wallet.scope, record.balance, wallet.user), b"", db=board)
