"""The economy's public API: what the command layer calls.

Mutations go to wallet actors as messages carrying the caller's idempotency key. A payment
is two steps with a durable record between them: the sender's wallet commits the debit and
an outbox record together, then the receiver's wallet is asked to apply the credit, which
deletes the outbox record in the same commit. If anything stops in between, the outbox
record stays and is delivered again (by the next retry, the periodic sweep or the boot
sweep). Reads (history, leaderboard, shop) are served from ordered indexes in the store.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

import trio

from actors import keys
from actors.accounts import member_of
from actors.context import EconomyContext
from actors.errors import (
    AlreadyRefunded,
    BotRecipient,
    DuplicateItem,
    GuildOnly,
    InvalidAmount,
    InvalidInput,
    NotFound,
    NotRefundable,
    SelfTransfer,
    Undeliverable,
)
from actors.parked import PARKED, ParkedRecord, error_text, list_parked, parked_key
from actors.records import (
    HISTORY,
    IDEMPOTENCY,
    OUTBOX,
    SETTINGS,
    SHOP_ITEM,
    WALLET,
    HistoryEntry,
    ScopeSettings,
    ShopItem,
    WalletRecord,
)
from actors.runtime import ActorCrashed, ActorKind, ActorRef, ActorSystem, RuntimeFailure
from actors.wallet import (
    WALLET_KIND,
    Adjust,
    AdjustResult,
    Buy,
    Credit,
    CreditResult,
    Open,
    ParkedRefundResult,
    Pay,
    PayResult,
    Prune,
    RefundParked,
    Reset,
    ResetResult,
    Reward,
    RewardResult,
    Sell,
    TradeResult,
    UseItem,
    UseResult,
    Wallet,
    WalletView,
)
from metrics import log_event
from metrics.registry import DELIVERY_TRANSFER_KINDS
from storage import RecordDecodeError, unpackb

log = logging.getLogger("croupier.economy")


def check_user_id(value: object, field: str) -> int:
    """A Discord user id (a snowflake, 1 to 2**64-1), or ``InvalidInput`` naming ``field``.

    The command layer parses ids at the boundary; the domain refuses them again because
    an id outside the range becomes a key (or an outbox record) that can never be used.
    """
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= keys.u64_max:
        raise InvalidInput(field, "must be a Discord id, a whole number from 1 to 2**64-1")
    return value


def check_guild_id(value: object) -> int:
    """A guild id, or 0 for "no guild" (a direct message, the console without one)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= keys.u64_max:
        raise InvalidInput(
            "guild", "must be a Discord id, a whole number from 1 to 2**64-1 (or 0 for none)"
        )
    return value


@dataclass
class _Failing:
    """A transfer whose delivery raised: how often, the last error, and when (on trio's
    clock) it is tried again."""

    attempts: int = 0
    error: str = ""
    retry_at: float = 0.0


@dataclass(frozen=True)
class PayOutcome:
    """A payment: ``status`` is "credited", or "returned" when the recipient was at the
    maximum balance and the money came back; ``balance`` is the sender's after it."""

    transfer_id: str
    to_user: int
    amount: int
    status: Literal["credited", "returned", "pending"]
    balance: int


@dataclass(frozen=True)
class HistoryPage:
    entries: tuple[HistoryEntry, ...]
    page: int
    pages: int


@dataclass(frozen=True)
class LeaderboardRow:
    rank: int
    user: int
    balance: int


@dataclass(frozen=True)
class LeaderboardPage:
    rows: tuple[LeaderboardRow, ...]
    page: int
    has_next: bool


@dataclass(frozen=True)
class InventoryLine:
    item: ShopItem
    count: int


class Economy:
    """Wallets, transfers, rewards, leaderboards, history, shop and settings."""

    def __init__(self, context: EconomyContext, actors: ActorSystem) -> None:
        self.context = context
        self.store = context.store
        self.limits = context.limits
        self.actors = actors
        actors.register(ActorKind(WALLET_KIND, lambda key: Wallet(context, key)))
        # Transfers whose delivery failed, retried by ``run_redelivery``. Kept in memory:
        # after a restart each is tried again from its first attempt, so a bad record
        # costs a bounded number of attempts per run before it is parked.
        self._failing: dict[str, _Failing] = {}
        self._retry_wake = trio.Event()

    # --- scopes and wallets ------------------------------------------------------------

    def scope(self, guild_id: int) -> int:
        check_guild_id(guild_id)
        if not self.context.global_scope and guild_id == 0:
            raise GuildOnly()
        return self.context.scope_of(guild_id)

    def wallet(self, scope: int, user: int) -> ActorRef:
        # Callers validate user input first; an id out of range here is a bug.
        assert 0 <= scope <= keys.u64_max and 1 <= user <= keys.u64_max, (scope, user)
        return self.actors.ref(WALLET_KIND, (scope, user))

    def settings(self, guild_id: int) -> ScopeSettings:
        return self.context.settings(self.scope(guild_id))

    async def balance(self, guild_id: int, user: int) -> WalletView:
        check_user_id(user, "user")
        view: WalletView = await self.wallet(self.scope(guild_id), user).ask(Open())
        return view

    async def reward(
        self, guild_id: int, user: int, kind: Literal["daily", "work"], key: str
    ) -> RewardResult:
        self.check_key(key)
        check_user_id(user, "user")
        result: RewardResult = await self.wallet(self.scope(guild_id), user).ask(Reward(kind, key))
        return result

    # --- payments ----------------------------------------------------------------------

    async def pay(
        self,
        guild_id: int,
        user: int,
        to_user: int,
        amount: int,
        key: str,
        *,
        reason: str = "",
        to_is_bot: bool = False,
    ) -> PayOutcome:
        scope = self.scope(guild_id)
        self.check_key(key)
        # The recipient is checked before the debit commits: money sent to an id that no
        # wallet can have would sit in the outbox forever.
        check_user_id(user, "user")
        check_user_id(to_user, "to_user")
        if to_user == user:
            raise SelfTransfer()
        if to_is_bot:
            raise BotRecipient(to_user)
        _check_amount(amount)
        reason = self._check_reason(reason)
        debit: PayResult = await self.wallet(scope, user).ask(Pay(key, to_user, amount, reason))
        # The receiver is known, so its wallet is asked straight away; it reads the outbox
        # record itself and applies it once (a repeat finds it gone and answers from its
        # applied marker).
        status: str = "failed"
        if debit.transfer_id not in self._failing:
            # (A repeat of a payment whose delivery failed leaves it to the retries.)
            try:
                credit: CreditResult = await self.wallet(scope, debit.to_user).ask(
                    Credit(debit.transfer_id)
                )
                status = credit.status
            except (ActorCrashed, Undeliverable) as exc:
                # The debit is durable and the transfer stays in flight: it is retried
                # with backoff (and parked if it never lands), so it is answered pending.
                await self._failed(debit.transfer_id, exc)
        if status == "bounced":
            # Delivered now or by an earlier attempt: the refund may still be in flight.
            await self.deliver(f"{debit.transfer_id}/refund")
        balance = debit.balance
        if status != "credited":
            view: WalletView = await self.wallet(scope, user).ask(Open())
            balance = view.balance
        final: Literal["credited", "returned", "pending"] = (
            "credited" if status == "credited" else "returned" if status == "bounced" else "pending"
        )
        return PayOutcome(debit.transfer_id, to_user, amount, final, balance)

    async def deliver(self, transfer_id: str) -> str:
        """Deliver an outbox record (and its refund, if it bounces) until none is left.

        Returns "credited" or "bounced" for a transfer delivered now, "absent" when
        there was nothing to deliver, and "failed" when delivering it raised: the failure
        is contained to that transfer, which ``run_redelivery`` tries again with backoff
        and parks after ``delivery_attempts_max`` attempts. A busy wallet is no fault of
        the transfer: the ``RuntimeFailure`` propagates, and a later sweep delivers it.
        """
        status = "absent"
        first = True
        while True:
            try:
                credit = await self._deliver_once(transfer_id)
            except ActorCrashed as exc:
                # The target's actor crashed on it (a runtime failure, but not a transient one).
                await self._failed(transfer_id, exc)
                return "failed"
            except RuntimeFailure:
                raise
            except Exception as exc:
                await self._failed(transfer_id, exc)
                return "failed"
            self._failing.pop(transfer_id, None)
            if credit is None:
                return status
            if first:
                status = credit.status
            if credit.status != "bounced":
                return status
            transfer_id = f"{transfer_id}/refund"
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

    async def _failed(self, transfer_id: str, exc: Exception) -> None:
        """Count a failed delivery; schedule its retry, or park it past the limit."""
        # The transfer stays listed while it is parked below, so no sweep or retry
        # delivers it between the decision and the commit that moves it.
        failing = self._failing.setdefault(transfer_id, _Failing())
        failing.retry_at = math.inf
        failing.attempts += 1
        failing.error = error_text(exc)
        kind = transfer_id.split(":", 1)[0]
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
        key, now = transfer_id.encode(), self.context.now()
        db_outbox, db_parked = self.store.db("outbox"), self.store.db("parked")
        target_key = parked_key("transfer", transfer_id)

        def write(txn: Any) -> bool:
            raw = txn.get(key, db=db_outbox)
            if raw is None:
                return False
            parked = ParkedRecord(
                kind="transfer",
                ident=transfer_id,
                source_db="outbox",
                source_key=key,
                value=bytes(raw),
                error=failing.error,
                attempts=failing.attempts,
                parked_at=now,
            )
            _describe_transfer(parked, raw)
            txn.delete(key, db=db_outbox)
            txn.put(target_key, PARKED.encode(parked), db=db_parked)
            return True

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

    def parked_transfers(self) -> list[ParkedRecord]:
        return list_parked(self.store, "transfer")

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

    async def prune_idempotency(self) -> int:
        """Have every wallet holding results older than the retention forget them;
        return how many were forgotten.

        The store is read in a worker thread to find those wallets (one pass over the
        stored results); each wallet then deletes its own records, in its own commit."""
        before = self.context.now() - self.limits.idempotency_retention_seconds
        wallets = await trio.to_thread.run_sync(self._wallets_with_results_before, before)
        pruned = 0
        # A few wallets at a time share commits without crowding out the live traffic.
        slots = trio.Semaphore(self.limits.prune_wallets_concurrent_max)

        async def prune(scope: int, user: int) -> None:
            """Runs holding a slot its starter acquired; gives it back when done."""
            nonlocal pruned
            try:
                forgotten: int = await self.wallet(scope, user).ask(Prune(before))
                pruned += forgotten
            finally:
                slots.release()

        async with trio.open_nursery() as nursery:
            for scope, user in wallets:
                await slots.acquire()
                nursery.start_soon(prune, scope, user)
        return pruned

    def _wallets_with_results_before(self, before: float) -> list[tuple[int, int]]:
        """Runs in a worker thread. Reads in short transactions of a few thousand records,
        each under the map gate, so that the writer never waits long to grow the map."""
        found: dict[tuple[int, int], None] = {}
        db = self.store.db("idempotency")
        start = b""
        while True:
            with self.store.map_gate, self.store.read() as txn:
                cursor = txn.cursor(db=db)
                if not cursor.set_range(start):
                    return list(found)
                for read, (key, value) in enumerate(cursor):
                    if read == self.limits.prune_scan_records_per_read_max:
                        start = key
                        break
                    wallet = keys.split_wallet_key(key[:16])
                    if wallet not in found and IDEMPOTENCY.decode(value).at < before:
                        found[wallet] = None
                else:
                    return list(found)

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

    # --- admin -------------------------------------------------------------------------

    async def adjust(
        self,
        guild_id: int,
        admin: int,
        user: int,
        op: Literal["add", "remove", "set"],
        amount: int,
        key: str,
        *,
        reason: str,
    ) -> AdjustResult:
        scope = self.scope(guild_id)
        self.check_key(key)
        check_user_id(admin, "admin")
        check_user_id(user, "user")
        if op != "set":
            _check_amount(amount)
        elif not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
            raise InvalidAmount(amount)
        reason = self._check_reason(reason)
        result: AdjustResult = await self.wallet(scope, user).ask(
            Adjust(key, op, amount, reason, admin)
        )
        return result

    async def reset(
        self, guild_id: int, admin: int, user: int, key: str, *, reason: str
    ) -> ResetResult:
        scope = self.scope(guild_id)
        self.check_key(key)
        check_user_id(admin, "admin")
        check_user_id(user, "user")
        reason = self._check_reason(reason)
        result: ResetResult = await self.wallet(scope, user).ask(Reset(key, reason, admin))
        return result

    async def update_settings(self, guild_id: int, changes: dict[str, Any]) -> ScopeSettings:
        """Change some settings of a scope at once; refused whole if any value is bad."""
        scope = self.scope(guild_id)
        editable = ScopeSettings.editable()
        for name, value in changes.items():
            if name not in editable:
                raise InvalidInput(name, f"unknown setting; use one of {', '.join(editable)}")
            wanted = int if editable[name] == "int" else str
            if not isinstance(value, wanted) or isinstance(value, bool):
                raise InvalidInput(name, f"must be {'a whole number' if wanted is int else 'text'}")
        key, db = keys.settings_key(scope), self.store.db("settings")

        def apply(txn: Any) -> ScopeSettings:
            raw = txn.get(key, db=db)
            current = SETTINGS.decode(raw) if raw is not None else ScopeSettings()
            updated = dataclasses.replace(current, **changes)
            problems = updated.check()
            if problems:
                raise InvalidInput(*problems[0])
            txn.put(key, SETTINGS.encode(updated), db=db)
            return updated

        try:
            result: ScopeSettings = await self.store.write(apply)
        finally:
            self.context.forget_settings(scope)
        return result

    # --- reads -------------------------------------------------------------------------

    def find_wallet(self, guild_id: int, user: int) -> WalletRecord | None:
        """A member's wallet as stored, or None if they never used the economy. Unlike
        ``balance`` it creates nothing: an admin looking a member up changes no state."""
        scope = self.scope(guild_id)
        check_user_id(user, "user")
        with self.store.read() as txn:
            raw = txn.get(keys.wallet_key(scope, user), db=self.store.db("wallets"))
        return None if raw is None else WALLET.decode(raw)

    def history(self, guild_id: int, user: int, page: int = 1) -> HistoryPage:
        scope = self.scope(guild_id)
        check_user_id(user, "user")
        size = self.limits.history_page_entries_max
        with self.store.read() as txn:
            raw = txn.get(keys.wallet_key(scope, user), db=self.store.db("wallets"))
            if raw is None:
                return HistoryPage((), 1, 1)
            count = WALLET.decode(raw).history_seq
            pages = max(1, -(-count // size))
            page = min(max(1, page), pages)
            newest = count - 1 - (page - 1) * size
            db = self.store.db("history")
            entries = []
            for sequence in range(newest, max(-1, newest - size), -1):
                value = txn.get(keys.history_key(scope, user, sequence), db=db)
                assert value is not None, (scope, user, sequence)
                entries.append(HISTORY.decode(value))
        return HistoryPage(tuple(entries), page, pages)

    def leaderboard(self, guild_id: int, page: int = 1) -> LeaderboardPage:
        """Top balances from the ordered index; pages past the limit are refused."""
        scope = self.scope(guild_id)
        size = self.limits.leaderboard_page_entries_max
        pages_max = self.limits.leaderboard_pages_max
        if not 1 <= page <= pages_max:
            raise InvalidInput("page", f"must be between 1 and {pages_max}")
        prefix = keys.u64(scope)
        skip = (page - 1) * size
        rows: list[LeaderboardRow] = []
        has_next = False
        with self.store.read() as txn:
            cursor = txn.cursor(db=self.store.db("leaderboard"))
            if cursor.set_range(prefix):
                for index, key in enumerate(cursor.iternext(values=False)):
                    if not key.startswith(prefix):
                        break
                    if index < skip:
                        continue
                    if len(rows) == size:
                        has_next = page < pages_max
                        break
                    _, balance, user = keys.split_leaderboard_key(key)
                    rows.append(LeaderboardRow(index + 1, user, balance))
        return LeaderboardPage(tuple(rows), page, has_next)

    def rank(self, guild_id: int, user: int) -> int | None:
        """``user``'s place on the leaderboard (1 is the richest), or None when it is past
        the pages the leaderboard shows (so the walk is bounded) or the user holds no
        wallet yet."""
        scope = self.scope(guild_id)
        check_user_id(user, "user")
        shown_max = self.limits.leaderboard_pages_max * self.limits.leaderboard_page_entries_max
        prefix = keys.u64(scope)
        with self.store.read() as txn:
            raw = txn.get(keys.wallet_key(scope, user), db=self.store.db("wallets"))
            if raw is None:
                return None
            mine = keys.leaderboard_key(scope, WALLET.decode(raw).balance, user)
            cursor = txn.cursor(db=self.store.db("leaderboard"))
            if not cursor.set_range(prefix):
                return None
            # Every key from the scope's first to ``mine`` shares the scope's prefix, so
            # counting the keys below ``mine`` is the rank; the walk stops at the bound.
            walk = itertools.islice(cursor.iternext(values=False), shown_max)
            # The count runs in C: a deque of one keeps only the last (index, key).
            last = collections.deque(enumerate(itertools.takewhile(mine.__gt__, walk), 1), 1)
            above = last[0][0] if last else 0
        return above + 1 if above < shown_max else None

    def money_supply(self) -> dict[int, int]:
        """Coins in circulation per scope: what its system accounts have issued.

        Every coin a user holds, a game escrows or a transfer carries was issued by a
        system account, so the negated sum of a scope's (three) system accounts is its
        supply. That is a short scan, unlike summing every wallet."""
        supply: dict[int, int] = {}
        with self.store.read() as txn:
            for key, value in txn.cursor(db=self.store.db("system")):
                scope = keys.read_u64(key)
                supply[scope] = supply.get(scope, 0) - unpackb(value)
        return supply

    # --- shop --------------------------------------------------------------------------

    def items(self, guild_id: int, *, include_retired: bool = False) -> list[ShopItem]:
        scope = self.scope(guild_id)
        prefix = keys.u64(scope)
        found = []
        with self.store.read() as txn:
            cursor = txn.cursor(db=self.store.db("shop"))
            if cursor.set_range(prefix):
                for key, value in cursor:
                    if not key.startswith(prefix):
                        break
                    item = SHOP_ITEM.decode(value)
                    if include_retired or not item.retired:
                        found.append(item)
        return found

    def find_item(self, guild_id: int, name_or_id: str | int) -> ShopItem:
        """An item by id, or by name (case-insensitive; live items before retired)."""
        items = self.items(guild_id, include_retired=True)
        if isinstance(name_or_id, int) or str(name_or_id).isdigit():
            wanted = int(name_or_id)
            for item in items:
                if item.item_id == wanted:
                    return item
        else:
            name = str(name_or_id).strip().casefold()
            matches = [i for i in items if i.name.casefold() == name]
            matches.sort(key=lambda i: i.retired)
            if matches:
                return matches[0]
        raise NotFound("item", name_or_id)

    async def create_item(
        self,
        guild_id: int,
        *,
        name: str,
        price: int,
        stock: int | None = None,
        role_id: int | None = None,
        sell_price: int | None = None,
        description: str = "",
        key: str = "",
    ) -> ShopItem:
        """Add an item to the scope's shop. With ``key``, a repeat of the same request
        answers with the item it created (a redelivered command changes nothing twice)."""
        scope = self.scope(guild_id)
        if key:
            self.check_key(key)
        item = ShopItem(
            0,
            name.strip(),
            price,
            stock,
            role_id,
            sell_price,
            False,
            self.context.now(),
            description,
            created_by_key=key,
        )
        self._check_item(item)
        db = self.store.db("shop")
        prefix = keys.u64(scope)
        items_max = self.limits.shop_items_per_scope_max

        def apply(txn: Any) -> ShopItem:
            cursor = txn.cursor(db=db)
            existing = []
            if cursor.set_range(prefix):
                for item_key, value in cursor:
                    if not item_key.startswith(prefix):
                        break
                    existing.append(SHOP_ITEM.decode(value))
            for earlier in existing:
                if key and earlier.created_by_key == key:
                    return earlier
            if len(existing) >= items_max:
                raise InvalidInput("name", f"a shop holds at most {items_max} items")
            if any(i.name.casefold() == item.name.casefold() and not i.retired for i in existing):
                raise DuplicateItem(item.name)
            created = dataclasses.replace(
                item, item_id=1 + max((i.item_id for i in existing), default=0)
            )
            txn.put(keys.item_key(scope, created.item_id), SHOP_ITEM.encode(created), db=db)
            return created

        result: ShopItem = await self.store.write(apply)
        return result

    async def edit_item(self, guild_id: int, item_id: int, **changes: Any) -> ShopItem:
        scope = self.scope(guild_id)
        allowed = {"name", "price", "stock", "role_id", "sell_price", "description", "retired"}
        for name in changes:
            if name not in allowed:
                raise InvalidInput(
                    name, f"cannot be edited; edit one of {', '.join(sorted(allowed))}"
                )
        key, db = keys.item_key(scope, item_id), self.store.db("shop")
        check = self._check_item
        prefix = keys.u64(scope)

        def apply(txn: Any) -> ShopItem:
            raw = txn.get(key, db=db)
            if raw is None:
                raise NotFound("item", item_id)
            updated = dataclasses.replace(SHOP_ITEM.decode(raw), **changes)
            updated.name = updated.name.strip()
            check(updated)
            if "name" in changes or changes.get("retired") is False:
                cursor = txn.cursor(db=db)
                if cursor.set_range(prefix):
                    for other_key, value in cursor:
                        if not other_key.startswith(prefix):
                            break
                        other = SHOP_ITEM.decode(value)
                        same = other.name.casefold() == updated.name.casefold()
                        if same and other.item_id != item_id and not other.retired:
                            raise DuplicateItem(updated.name)
            txn.put(key, SHOP_ITEM.encode(updated), db=db)
            return updated

        result: ShopItem = await self.store.write(apply)
        return result

    async def retire_item(self, guild_id: int, item_id: int) -> ShopItem:
        """Stop selling an item. Its record stays, so inventories keep pointing at it."""
        return await self.edit_item(guild_id, item_id, retired=True)

    async def buy(
        self, guild_id: int, user: int, item_id: int, quantity: int, key: str
    ) -> TradeResult:
        scope = self.scope(guild_id)
        self.check_key(key)
        _check_amount(quantity, field="quantity")
        check_user_id(user, "user")
        result: TradeResult = await self.wallet(scope, user).ask(Buy(key, item_id, quantity))
        return result

    async def sell(
        self, guild_id: int, user: int, item_id: int, quantity: int, key: str
    ) -> TradeResult:
        scope = self.scope(guild_id)
        self.check_key(key)
        _check_amount(quantity, field="quantity")
        check_user_id(user, "user")
        result: TradeResult = await self.wallet(scope, user).ask(Sell(key, item_id, quantity))
        return result

    async def use(self, guild_id: int, user: int, item_id: int, key: str) -> UseResult:
        scope = self.scope(guild_id)
        self.check_key(key)
        check_user_id(user, "user")
        result: UseResult = await self.wallet(scope, user).ask(UseItem(key, item_id))
        return result

    def inventory(self, guild_id: int, user: int) -> list[InventoryLine]:
        scope = self.scope(guild_id)
        check_user_id(user, "user")
        prefix = keys.wallet_key(scope, user)
        lines = []
        with self.store.read() as txn:
            shop = self.store.db("shop")
            cursor = txn.cursor(db=self.store.db("inventory"))
            if cursor.set_range(prefix):
                for key, value in cursor:
                    if not key.startswith(prefix):
                        break
                    item_id = keys.read_u64(key, 16)
                    raw = txn.get(keys.item_key(scope, item_id), db=shop)
                    assert raw is not None, ("inventory entry without item", scope, item_id)
                    lines.append(InventoryLine(SHOP_ITEM.decode(raw), int.from_bytes(value, "big")))
        return lines

    # --- validation --------------------------------------------------------------------

    def check_key(self, key: str) -> None:
        if not key or len(key.encode()) > self.limits.idempotency_key_bytes_max:
            raise InvalidInput("key", "a request id of 1 to 128 bytes is required")

    def _check_reason(self, reason: str) -> str:
        reason = reason.strip()
        if len(reason) > self.limits.reason_chars_max:
            raise InvalidInput("reason", f"at most {self.limits.reason_chars_max} characters")
        return reason

    def _check_item(self, item: ShopItem) -> None:
        if not 1 <= len(item.name) <= self.limits.item_name_chars_max:
            raise InvalidInput("name", f"1 to {self.limits.item_name_chars_max} characters")
        if item.name.lstrip("#").isdigit():
            # Items are found by id when named by digits, so such a name could never be used.
            raise InvalidInput("name", "must not be only digits; add a letter")
        if len(item.description) > self.limits.reason_chars_max:
            raise InvalidInput("description", f"at most {self.limits.reason_chars_max} characters")
        for name in ("price", "stock", "sell_price", "role_id"):
            value = getattr(item, name)
            if value is None and name != "price":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidInput(name, "must be a whole number of 0 or more")
        ceiling = self.limits.item_price_coins_max
        if item.price > ceiling or (item.sell_price or 0) > ceiling:
            raise InvalidInput("price", f"at most {ceiling}")


def _check_amount(amount: object, *, field: str = "amount") -> None:
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 1:
        raise InvalidAmount(amount, field=field)


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
