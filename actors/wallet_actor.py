"""The wallet actor: one per (scope, user), the only writer of that user's money records.

Messages are handled a mailbox batch at a time. Each message is planned in turn from the
record the previous one left (``actors.wallet_plans``: a plain function per operation,
given what the actor read for it) and the plans of the batch become durable in one group
commit before any reply leaves. A crash before that restarts the actor from the store, and
every ask of the batch fails with an unknown outcome that its idempotency key makes safe
to retry. A trade (its checks read shared item records) and a wager (its game's writes may
refuse it) are planned the same way but committed alone, so a refusal inside the commit
rolls back nothing of the others.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Sequence
from typing import Any, Literal

import outcome

from actors import keys
from actors.context import EconomyContext
from actors.errors import AlreadyRefunded, CroupierError, KeyReused, NotFound, Undeliverable
from actors.parked import PARKED, parked_key
from actors.records import (
    APPLIED_BOUNCED,
    APPLIED_CREDITED,
    IDEMPOTENCY,
    OUTBOX,
    WALLET,
    ScopeSettings,
    WalletRecord,
)
from actors.runtime import Actor
from actors.shop import plan_trade_in
from actors.wallet import (
    RESULT_TYPES,
    Adjust,
    Buy,
    Credit,
    CreditResult,
    Open,
    ParkedRefundResult,
    Pay,
    Prune,
    RefundParked,
    Request,
    Reset,
    Reward,
    Sell,
    UseItem,
    Wager,
    WalletView,
)
from actors.wallet_plans import (
    Plan,
    WalletId,
    apply_plans,
    check_record,
    plan_adjust,
    plan_credit,
    plan_open,
    plan_pay,
    plan_prune,
    plan_refund_parked,
    plan_reset,
    plan_reward,
    plan_wager,
)
from storage import RecordDecodeError

# The requests planned from the wallet's record alone.
_PLANNERS: dict[type[Any], Any] = {Reward: plan_reward, Pay: plan_pay, Adjust: plan_adjust}


class _Batch:
    """The plans of one batch, and what its messages answered, before the commit."""

    def __init__(self, record: WalletRecord) -> None:
        self.record = record
        self.plans: list[Plan[Any]] = []
        # A repeat in the same batch answers from here, as the store does not show it yet:
        # request key -> (op, answer), and transfer (or parked record) -> its status.
        self.answered: dict[str, tuple[str, Any]] = {}
        self.consumed: dict[str, Any] = {}

    def add(self, plan: Plan[Any]) -> Any:
        self.plans.append(plan)
        self.record = plan.record
        return plan.result


class Wallet(Actor):
    def __init__(self, context: EconomyContext, key: tuple[int, int]) -> None:
        self.context = context
        self.store = context.store
        scope, user = key
        # The economy refuses ids out of range before any message is sent; one here is a bug.
        assert 0 <= scope <= keys.u64_max and 1 <= user <= keys.u64_max, key
        self.wallet = WalletId(scope, user)
        self.record = WalletRecord(balance=0, created_at=0.0)
        # The balance the leaderboard holds for this wallet (-1: no entry yet).
        self.indexed_balance = -1

    async def activate(self) -> None:
        with self.store.read() as txn:
            raw = txn.get(self.wallet.key, db=self.store.db("wallets"))
        if raw is not None:
            self.record = check_record(WALLET.decode(raw))
            self.indexed_balance = self.record.balance
            return
        settings = self.context.settings(self.wallet.scope)
        await self._commit([plan_open(self.wallet, settings, self.context.now())])

    async def handle_batch(self, messages: Sequence[Any]) -> list[outcome.Outcome[Any]]:
        settings = self.context.settings(self.wallet.scope)
        now = self.context.now()
        batch = _Batch(self.record)
        results: list[outcome.Outcome[Any]] = []
        for message in messages:
            try:
                if isinstance(message, (Buy, Sell, UseItem, Wager)):
                    await self._commit(batch.plans)
                    batch = _Batch(self.record)
                    result = await self._alone(message, settings, now)
                    batch = _Batch(self.record)
                else:
                    result = self._plan(message, settings, now, batch)
                results.append(outcome.Value(result))
            except CroupierError as exc:
                # A refusal is a reply: without the traceback it does not keep this
                # frame (and the batch) alive in a cycle for the garbage collector.
                results.append(outcome.Error(exc.with_traceback(None)))
        await self._commit(batch.plans)
        return results

    def _plan(self, message: Any, settings: ScopeSettings, now: float, batch: _Batch) -> Any:
        if isinstance(message, Open):
            record = batch.record
            return WalletView(
                self.wallet.user, record.balance, record.daily_ready_at, record.work_ready_at
            )
        if isinstance(message, Credit):
            return self._credit(message, settings, now, batch)
        if isinstance(message, Prune):
            expired = self._expired(message.before)
            return batch.add(plan_prune(self.wallet, batch.record, expired, now)) if expired else 0
        if isinstance(message, RefundParked):
            return self._refund_parked(message, settings, now, batch)
        assert isinstance(message, (Reward, Pay, Adjust, Reset)), message
        replay = self._replay(message, batch.answered)
        if replay is not None:
            return replay
        if isinstance(message, Reset):
            inventory = self._inventory_keys()
            plan = plan_reset(self.wallet, batch.record, message, settings, now, inventory)
        else:
            plan = _PLANNERS[type(message)](self.wallet, batch.record, message, settings, now)
        batch.answered[message.key] = (message.operation, plan.result)
        return batch.add(plan)

    async def _alone(
        self, message: Buy | Sell | UseItem | Wager, settings: ScopeSettings, now: float
    ) -> Any:
        """A trade or a wager, in a commit of its own."""
        replay = self._replay(message, {})
        if replay is not None:
            return replay
        if isinstance(message, Wager):
            plan = plan_wager(self.wallet, self.record, message, settings, now)
            await self._commit([plan])
            return plan.result
        wallet, store, record, indexed = self.wallet, self.store, self.record, self.indexed_balance
        owned_max = self.context.limits.inventory_item_count_max

        def trade(txn: Any) -> Plan[Any]:
            plan = plan_trade_in(txn, store, wallet, record, message, settings, now, owned_max)
            apply_plans(txn, store, wallet, (plan,), indexed)
            return plan

        traded: Plan[Any] = await self.store.write(trade)
        self._committed([traded])
        return traded.result

    # --- what the plans are given, read from the store --------------------------------

    def _replay(self, message: Request, answered: dict[str, tuple[str, Any]]) -> Any | None:
        """The stored answer of an earlier request with this key, if there was one."""
        found = answered.get(message.key)
        if found is None:
            key = keys.idempotency_key(self.wallet.scope, self.wallet.user, message.key)
            with self.store.read() as txn:
                raw = txn.get(key, db=self.store.db("idempotency"))
            if raw is None:
                return None
            stored = IDEMPOTENCY.decode(raw)
            if stored.op != message.operation:
                raise KeyReused(message.key, stored.op)
            return RESULT_TYPES[stored.op](**stored.result)
        op, result = found
        if op != message.operation:
            raise KeyReused(message.key, op)
        return result

    def _credit(
        self, message: Credit, settings: ScopeSettings, now: float, batch: _Batch
    ) -> CreditResult:
        transfer_id = message.transfer_id
        done = batch.consumed.get(transfer_id)
        if done is not None:
            return CreditResult(transfer_id, done, 0, batch.record.balance)
        tid = transfer_id.encode()
        applied = keys.applied_key(self.wallet.scope, self.wallet.user, tid)
        with self.store.read() as txn:
            raw = txn.get(tid, db=self.store.db("outbox"))
            marker = txn.get(applied, db=self.store.db("applied")) if raw is None else None
        if raw is None:
            status: Literal["credited", "returned", "absent"] = "absent"
            if marker == APPLIED_CREDITED:
                status = "credited"
            elif marker == APPLIED_BOUNCED:
                status = "returned"
            return CreditResult(transfer_id, status, 0, batch.record.balance)
        try:
            outbox = OUTBOX.decode(raw)
        except RecordDecodeError as exc:
            raise Undeliverable(transfer_id, f"its record cannot be read ({exc})") from None
        plan = plan_credit(self.wallet, batch.record, message, settings, now, outbox)
        batch.consumed[transfer_id] = plan.result.status
        result: CreditResult = batch.add(plan)
        return result

    def _refund_parked(
        self, message: RefundParked, settings: ScopeSettings, now: float, batch: _Batch
    ) -> ParkedRefundResult:
        ident, kind = message.transfer_id, message.kind
        if f"parked:{kind}:{ident}" in batch.consumed:
            raise AlreadyRefunded(ident, now)
        with self.store.read() as txn:
            raw = txn.get(parked_key(kind, ident), db=self.store.db("parked"))
        if raw is None:
            raise NotFound(f"parked {kind}", ident)
        parked = PARKED.decode(raw)
        plan = plan_refund_parked(self.wallet, batch.record, message, settings, now, parked)
        batch.consumed[f"parked:{kind}:{ident}"] = "credited"
        result: ParkedRefundResult = batch.add(plan)
        return result

    def _expired(self, before: float) -> list[bytes]:
        with self.store.read() as txn:
            stored = keys.prefixed(txn, self.store.db("idempotency"), self.wallet.key)
            return [bytes(key) for key, value in stored if IDEMPOTENCY.decode(value).at < before]

    def _inventory_keys(self) -> list[bytes]:
        with self.store.read() as txn:
            owned = keys.prefixed_keys(txn, self.store.db("inventory"), self.wallet.key)
            return [bytes(key) for key in owned]

    # --- durability --------------------------------------------------------------------

    async def _commit(self, plans: Sequence[Plan[Any]]) -> None:
        if not plans:
            return
        write = functools.partial(
            apply_plans,
            store=self.store,
            wallet=self.wallet,
            plans=tuple(plans),
            indexed_balance=self.indexed_balance,
        )
        await self.store.write(write)
        self._committed(plans)

    def _committed(self, plans: Sequence[Plan[Any]]) -> None:
        """The plans are durable: the actor's record is the last one's."""
        self.record = plans[-1].record
        self.indexed_balance = self.record.balance
        counted = collections.Counter(label for plan in plans for label in plan.transfers)
        for reason, count in counted.items():
            self.context.count_transfers(reason, count)
