"""Transfers in flight: delivering outbox records to their target wallets, retrying the
ones that fail, parking the ones that never land, and refunding parked records.

An outbox record is written by its source's commit (a sender's debit, a game's
settlement or refund); delivering it is asking its target's wallet to apply it, which
deletes it in the same commit (``Credit``). Delivery is idempotent, so anything may
deliver a record again: a retried payment, the periodic sweep, the boot sweep. A record
whose delivery raises is contained: it is retried with backoff and, after
``delivery_attempts_max`` attempts, moved to ``parked`` with what it holds.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import trio

from actors import keys
from actors.accounts import TransferId, member_of
from actors.context import EconomyContext
from actors.errors import AlreadyRefunded, InvalidInput, NotFound, NotRefundable, Undeliverable
from actors.failures import ActorCrashed, RuntimeFailure
from actors.parked import PARKED, ParkedRecord, error_text, list_parked, park_record, parked_key
from actors.records import OUTBOX
from actors.runtime import ActorRef
from actors.wallet import Credit, CreditResult, ParkedRefundResult, RefundParked
from metrics import log_event
from metrics.registry import DELIVERY_TRANSFER_KINDS
from storage import RecordDecodeError

log = logging.getLogger("croupier.economy")

# What delivering a transfer did: "credited" or "returned" (it bounced, and its refund
# was delivered after it), "absent" (nothing to deliver), or "pending" (delivery raised:
# it stays in flight and is retried).
DeliveryStatus = Literal["credited", "returned", "absent", "pending"]


@dataclass
class _Failing:
    """A transfer whose delivery raised: how often, the last error, and when (on trio's
    clock) it is tried again."""

    attempts: int = 0
    error: str = ""
    retry_at: float = 0.0


class Deliveries:
    """Delivery of the outbox, with the retries and parking of failed transfers."""

    def __init__(
        self,
        context: EconomyContext,
        wallet: Callable[[int, int], ActorRef],
        scope: Callable[[int], int],
    ) -> None:
        self.context, self.store, self.limits = context, context.store, context.limits
        self.wallet, self.scope = wallet, scope
        # Transfers whose delivery failed, retried by ``run_redelivery``. Kept in memory:
        # after a restart each is tried again from its first attempt, so a bad record
        # costs a bounded number of attempts per run before it is parked.
        self._failing: dict[str, _Failing] = {}
        self._retry_wake = trio.Event()

    def is_failing(self, transfer_id: str) -> bool:
        """Whether the transfer waits out the backoff of a failed delivery."""
        return transfer_id in self._failing

    async def deliver(self, transfer_id: str) -> DeliveryStatus:
        """Deliver an outbox record (and its refund, if it bounces) until none is left.

        Returns "credited" or "returned" for a transfer delivered now, "absent" when
        there was nothing to deliver, and "pending" when delivering it raised: the failure
        is contained to that transfer, which ``run_redelivery`` tries again with backoff
        and parks after ``delivery_attempts_max`` attempts. A busy wallet is no fault of
        the transfer: the ``RuntimeFailure`` propagates, and a later sweep delivers it.
        """
        status: DeliveryStatus = "absent"
        first = True
        while True:
            try:
                credit = await self._deliver_once(transfer_id)
            except ActorCrashed as exc:
                # The target's actor crashed on it (a runtime failure, but not a transient one).
                await self.failed(transfer_id, exc)
                return "pending"
            except RuntimeFailure:
                raise
            except Exception as exc:
                await self.failed(transfer_id, exc)
                return "pending"
            self._failing.pop(transfer_id, None)
            if credit is None:
                return status
            if first:
                status = credit.status
            if credit.status != "returned":
                return status
            transfer_id = str(TransferId.parse(transfer_id).returned())
            first = False

    async def _deliver_once(self, transfer_id: str) -> CreditResult | None:
        """Ask the target wallet to apply one outbox record; None if there is none."""
        with self.store.read() as txn:
            raw = txn.get(transfer_id.encode(), db=self.store.db("outbox"))
        if raw is None:
            return None
        record = OUTBOX.decode(raw)
        # Every transfer in flight ends in a wallet: games pay out through the outbox
        # but take their stakes in the same commit as the wallet's debit.
        user = member_of(record.target)
        if user is None or not 0 <= record.scope <= keys.u64_max:
            raise Undeliverable(transfer_id, f"its target {record.target!r} is not a member")
        credit: CreditResult = await self.wallet(record.scope, user).ask(Credit(transfer_id))
        return credit

    async def failed(self, transfer_id: str, exc: Exception) -> None:
        """Count a failed delivery; schedule its retry, or park it past the limit."""
        # The transfer stays listed while it is parked below, so no sweep or retry
        # delivers it between the decision and the commit that moves it.
        failing = self._failing.setdefault(transfer_id, _Failing())
        failing.retry_at = math.inf
        failing.attempts += 1
        failing.error = error_text(exc)
        kind = TransferId.parse(transfer_id).kind
        label = kind if kind in DELIVERY_TRANSFER_KINDS else "other"
        self.store.metrics.delivery_failures.labels(label).inc()
        attempts_max = self.limits.delivery_attempts_max
        # The traceback once per transfer and run; later attempts log one line each.
        log.warning(
            "delivery of %s failed (attempt %d of %d): %s",
            transfer_id,
            failing.attempts,
            attempts_max,
            failing.error,
            exc_info=exc if failing.attempts == 1 else None,
        )
        wait = self.limits.delivery_retry_seconds_min * 2 ** (failing.attempts - 1)
        wait = min(wait, self.limits.delivery_retry_seconds_max)
        if failing.attempts >= attempts_max:
            try:
                await self._park(transfer_id, failing)
            except Exception:
                # The store refused the write (it fails only this request): retry later.
                log.exception("parking transfer %s failed; retrying later", transfer_id)
            else:
                self._failing.pop(transfer_id, None)
                return
        failing.retry_at = trio.current_time() + wait
        self._retry_wake.set()

    async def _park(self, transfer_id: str, failing: _Failing) -> None:
        """Move the outbox record into ``parked`` in one commit, with what it holds."""
        store, now = self.store, self.context.now()

        def write(txn: Any) -> bool:
            parked = park_record(
                txn,
                store,
                kind="transfer",
                ident=transfer_id,
                source_db="outbox",
                source_key=transfer_id.encode(),
                error=failing.error,
                attempts=failing.attempts,
                parked_at=now,
                describe=_describe_transfer,
            )
            return parked is not None

        if await self.store.write(write):
            self.store.metrics.parked.labels("transfer").inc()
            log_event(
                log,
                "transfer_parked",
                level=logging.ERROR,
                transfer=transfer_id,
                attempts=failing.attempts,
                error=failing.error,
            )

    async def run_redelivery(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Retry each failed transfer when its backoff ends, until cancelled."""
        task_status.started()
        while True:
            self._retry_wake = trio.Event()
            now = trio.current_time()
            due = [tid for tid, failing in self._failing.items() if failing.retry_at <= now]
            for transfer_id in due:
                try:
                    await self.deliver(transfer_id)
                except RuntimeFailure:
                    # Not the transfer's fault: look again after the shortest wait.
                    failing = self._failing.get(transfer_id)
                    if failing is not None:
                        failing.retry_at = now + self.limits.delivery_retry_seconds_min
            if due:
                continue
            next_at = min((f.retry_at for f in self._failing.values()), default=math.inf)
            with trio.move_on_at(next_at):
                await self._retry_wake.wait()

    def failing_transfers(self) -> dict[str, int]:
        """Transfer id -> failed attempts so far, for transfers waiting to be retried."""
        return {tid: failing.attempts for tid, failing in self._failing.items()}

    # --- parked transfers --------------------------------------------------------------

    async def refund_parked(
        self, transfer_id: str, *, by: str, guild_id: int | None = None
    ) -> ParkedRefundResult:
        """Return a parked record's coins to their owner, exactly once: a transfer's to
        the member who sent it, a parked game's stake to its player.

        With ``guild_id`` (an admin's command) only a record of that guild's scope is
        found; without it (the operator's command line) any is.
        """
        if not transfer_id or len(transfer_id.encode()) > self.limits.transfer_id_bytes_max:
            raise InvalidInput("id", "give the id of a parked transfer (see list-parked)")
        parked = None
        with self.store.read() as txn:
            for looked_up in ("transfer", "game"):
                key = parked_key(looked_up, transfer_id)
                raw = txn.get(key, db=self.store.db("parked"))
                if raw is not None:
                    parked = PARKED.decode(raw)
                    break
        if parked is None or (guild_id is not None and parked.scope != self.scope(guild_id)):
            raise NotFound("parked transfer", transfer_id)
        if parked.refunded:
            raise AlreadyRefunded(transfer_id, parked.refunded_at)
        owner = member_of(parked.owner)
        if owner is None or parked.amount <= 0:
            raise NotRefundable(transfer_id, parked.owner or "an unreadable record")
        kind: Literal["transfer", "game"] = "transfer" if parked.kind == "transfer" else "game"
        result: ParkedRefundResult = await self.wallet(parked.scope, owner).ask(
            RefundParked(transfer_id, by, kind)
        )
        self.store.metrics.parked_refunds.inc()
        log_event(
            log,
            "parked_refunded",
            level=logging.WARNING,
            kind=kind,
            id=transfer_id,
            coins=result.amount,
            by=by,
        )
        return result

    async def deliver_pending(self) -> int:
        """Deliver every outbox record in the store; return how many were tried.

        A transfer that fails is contained (see ``deliver``), and one waiting out its
        backoff is left to ``run_redelivery``; a busy wallet leaves its transfer for the
        next sweep. Nothing one record does stops the others.
        """
        with self.store.read() as txn:
            keys_found = [
                bytes(k) for k in txn.cursor(db=self.store.db("outbox")).iternext(values=False)
            ]
        pending = []
        for key in keys_found:
            try:
                pending.append(key.decode())
            except UnicodeDecodeError:
                # No code writes such a key (ids are text), so it is damage: it is left
                # alone, reported on every sweep, and stops nothing.
                self.store.metrics.delivery_failures.labels("other").inc()
                log.error("outbox key %r is not a transfer id; left in place", key)
        tried = 0
        for transfer_id in pending:
            if transfer_id in self._failing:
                continue
            tried += 1
            try:
                await self.deliver(transfer_id)
            except RuntimeFailure:
                log.warning("delivery of %s deferred: its wallet is busy", transfer_id)
        return tried

    def parked_transfers(self) -> list[ParkedRecord]:
        return list_parked(self.store, "transfer")


def _describe_transfer(parked: ParkedRecord, raw: bytes) -> None:
    """Copy what a parked transfer holds from its outbox record, when it can be read and
    its figures make sense; otherwise it is parked as unreadable, holding nothing."""
    try:
        record = OUTBOX.decode(raw)
    except RecordDecodeError:
        return
    scope, amount = record.scope, record.amount
    if not (isinstance(scope, int) and 0 <= scope <= keys.u64_max):
        return
    if not (isinstance(amount, int) and not isinstance(amount, bool) and amount > 0):
        return
    parked.scope, parked.amount = scope, amount
    parked.source, parked.target = str(record.source), str(record.target)
