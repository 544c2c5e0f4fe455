"""The economy's public API: what the command layer, the HTTP API and the CLI call.

Mutations go to wallet actors as messages carrying the caller's idempotency key; reads
(history, leaderboard) are served from ordered indexes in the store. The outbox's delivery
lives in ``actors.delivery``, the shop's catalogue in ``actors.shop``; ``Economy`` offers
their calls too, so callers know one object.

/pay, from a transport to the fsync. A transport (the Discord gateway, the HTTP
interactions endpoint, the console, the HTTP API) turns a request into a command call;
the command layer validates its options once, at the boundary, and calls ``Economy.pay``,
which refuses what no caller may ask (ids out of range, paying oneself or a bot), then:

1. asks the sender's wallet ``Pay``. The wallet actor plans it (``plan_pay``: the debit,
   its history entry, the outbox record and the stored answer) with the other messages of
   its mailbox batch, and submits the batch (``apply_plans``) to the store's writer, which
   commits it together with other wallets' batches in one LMDB transaction and fsyncs.
2. asks the receiver's wallet ``Credit``. It reads the outbox record and plans
   ``plan_credit`` (the credit, its history entry, the record deleted, an applied marker),
   committed the same way; a receiver at the maximum balance instead turns the record
   into a refund to the sender, in the same commit.
3. only on such a bounce: delivers the refund to the sender (a third commit), and reads
   the sender's balance to answer with.

The outbox record between steps 1 and 2 is why the flow comes back up here: the debit is
durable before the credit is tried, so if anything stops in between, the record stays
and is delivered again (by the next retry, the periodic sweep or the boot sweep).
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any, Literal

import trio

from actors import keys
from actors.accounts import TransferId
from actors.context import EconomyContext
from actors.delivery import Deliveries
from actors.errors import (
    BotRecipient,
    GuildOnly,
    InvalidAmount,
    InvalidInput,
    SelfTransfer,
    Undeliverable,
)
from actors.failures import ActorCrashed
from actors.records import (
    HISTORY,
    IDEMPOTENCY,
    SETTINGS,
    WALLET,
    HistoryEntry,
    ScopeSettings,
    WalletRecord,
)
from actors.runtime import ActorKind, ActorRef, ActorSystem
from actors.shop import InventoryLine, ShopCatalogue
from actors.wallet import (
    WALLET_KIND,
    Adjust,
    AdjustResult,
    Buy,
    Credit,
    CreditResult,
    Open,
    Pay,
    PayResult,
    Prune,
    Reset,
    ResetResult,
    Reward,
    RewardResult,
    Sell,
    TradeResult,
    TransferStatus,
    UseItem,
    UseResult,
    WalletView,
)
from actors.wallet_actor import Wallet
from actors.wallet_plans import check_record
from storage import unpackb


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


class Economy:
    """Wallets, transfers, rewards, leaderboards, history, shop and settings."""

    def __init__(self, context: EconomyContext, actors: ActorSystem) -> None:
        self.context = context
        self.store = context.store
        self.limits = context.limits
        self.actors = actors
        actors.register(ActorKind(WALLET_KIND, lambda key: Wallet(context, key)))
        self.deliveries = Deliveries(context, self.wallet, self.scope)
        self.catalogue = ShopCatalogue(context, self.scope, self.check_key)
        # Their calls are the economy's too: its callers know one object.
        self.deliver = self.deliveries.deliver
        self.deliver_pending = self.deliveries.deliver_pending
        self.run_redelivery = self.deliveries.run_redelivery
        self.failing_transfers = self.deliveries.failing_transfers
        self.parked_transfers = self.deliveries.parked_transfers
        self.refund_parked = self.deliveries.refund_parked
        self.items = self.catalogue.items
        self.find_item = self.catalogue.find_item
        self.create_item = self.catalogue.create_item
        self.edit_item = self.catalogue.edit_item
        self.retire_item = self.catalogue.retire_item

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
    ) -> PayResult:
        """Pay ``amount`` from ``user`` to ``to_user``: the flow is in this module's
        docstring. ``status`` in the answer says where the coins are."""
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
        status = await self._credit(scope, debit)
        if status == "credited":
            return dataclasses.replace(debit, status="credited")
        if status == "returned":
            # Delivered now or by an earlier attempt: the refund may still be in flight.
            await self.deliveries.deliver(str(TransferId.parse(debit.transfer_id).returned()))
        view: WalletView = await self.wallet(scope, user).ask(Open())
        return dataclasses.replace(debit, status=status, balance=view.balance)

    async def _credit(self, scope: int, debit: PayResult) -> TransferStatus:
        """Step 2 of a payment: the receiver is known, so its wallet is asked straight
        away; it reads the outbox record itself and applies it once (a repeat finds it
        gone and answers from its applied marker)."""
        if self.deliveries.is_failing(debit.transfer_id):
            # A repeat of a payment whose delivery failed leaves it to the retries.
            return "pending"
        try:
            credit: CreditResult = await self.wallet(scope, debit.to_user).ask(
                Credit(debit.transfer_id)
            )
        except (ActorCrashed, Undeliverable) as exc:
            # The debit is durable and the transfer stays in flight: it is retried with
            # backoff (and parked if it never lands), so it is answered pending.
            await self.deliveries.failed(debit.transfer_id, exc)
            return "pending"
        return "pending" if credit.status == "absent" else credit.status

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
        return None if raw is None else check_record(WALLET.decode(raw))

    def history(self, guild_id: int, user: int, page: int = 1) -> HistoryPage:
        scope = self.scope(guild_id)
        check_user_id(user, "user")
        size = self.limits.history_page_entries_max
        with self.store.read() as txn:
            raw = txn.get(keys.wallet_key(scope, user), db=self.store.db("wallets"))
            if raw is None:
                return HistoryPage((), 1, 1)
            count = check_record(WALLET.decode(raw)).history_seq
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
            board = keys.prefixed_keys(txn, self.store.db("leaderboard"), prefix)
            for index, key in enumerate(board):
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
        return self.catalogue.inventory(scope, user)

    # --- validation --------------------------------------------------------------------

    def check_key(self, key: str) -> None:
        if not key or len(key.encode()) > self.limits.idempotency_key_bytes_max:
            raise InvalidInput("key", "a request id of 1 to 128 bytes is required")

    def _check_reason(self, reason: str) -> str:
        reason = reason.strip()
        if len(reason) > self.limits.reason_chars_max:
            raise InvalidInput("reason", f"at most {self.limits.reason_chars_max} characters")
        return reason


def _check_amount(amount: object, *, field: str = "amount") -> None:
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 1:
        raise InvalidAmount(amount, field=field)
