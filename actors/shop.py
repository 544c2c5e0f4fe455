"""The shop: its catalogue of items, and the purchases and sales of a wallet.

Items are records shared by every wallet of a scope (a purchase lowers an item's stock),
so a purchase or a sale reads its item inside its own commit (``plan_trade_in``) and plans
from what it read with the wallet's plan shape (``plan_buy``, ``plan_sell``,
``plan_use``): the stock and price it checks are the ones it writes against. A member's
inventory entries are the wallet's own records, written only by its actor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actors import keys
from actors.accounts import SHOP, TransferId, TransferKind
from actors.context import EconomyContext
from actors.errors import (
    BalanceTooHigh,
    DuplicateItem,
    InsufficientFunds,
    InvalidAmount,
    InvalidInput,
    ItemRetired,
    NotEnoughItems,
    NotFound,
    NotSellable,
    OutOfStock,
)
from actors.records import SHOP_ITEM, ScopeSettings, ShopItem, WalletRecord
from actors.wallet import Buy, Sell, TradeResult, UseItem, UseResult
from actors.wallet_plans import Delete, Draft, Plan, Put, WalletId, Write
from storage import Store

EDITABLE_FIELDS = ("name", "price", "stock", "role_id", "sell_price", "description", "retired")


@dataclass(frozen=True)
class Shelf:
    """What a trade reads inside its commit: the item, how many the member owns, and how
    many one member may own."""

    item: ShopItem
    owned: int
    owned_max: int


@dataclass(frozen=True)
class InventoryLine:
    item: ShopItem
    count: int


# --- trades: planned from the shelf read in their own commit ----------------------------


def read_shelf(txn: Any, store: Store, wallet: WalletId, item_id: int, owned_max: int) -> Shelf:
    raw = txn.get(keys.item_key(wallet.scope, item_id), db=store.db("shop"))
    if raw is None:
        raise NotFound("item", item_id)
    item = SHOP_ITEM.decode(raw)
    key = keys.inventory_key(wallet.scope, wallet.user, item_id)
    owned_raw = txn.get(key, db=store.db("inventory"))
    owned = 0 if owned_raw is None else int.from_bytes(owned_raw, "big")
    return Shelf(item, owned, owned_max)


def _owned(wallet: WalletId, item_id: int, count: int) -> Write:
    key = keys.inventory_key(wallet.scope, wallet.user, item_id)
    return Put("inventory", key, count.to_bytes(8, "big")) if count else Delete("inventory", key)


def _restock(wallet: WalletId, item: ShopItem, change: int) -> Write:
    assert item.stock is not None and item.stock + change >= 0, (item, change)
    stocked = dataclasses.replace(item, stock=item.stock + change)
    return Put("shop", keys.item_key(wallet.scope, item.item_id), SHOP_ITEM.encode(stocked))


def plan_buy(
    wallet: WalletId,
    record: WalletRecord,
    message: Buy,
    settings: ScopeSettings,
    now: float,
    shelf: Shelf,
) -> Plan[TradeResult]:
    item, quantity = shelf.item, message.quantity
    if item.retired:
        raise ItemRetired(item.name)
    if item.stock is not None and item.stock < quantity:
        raise OutOfStock(item.name, item.stock, quantity)
    total = item.price * quantity
    if total > record.balance:
        raise InsufficientFunds(record.balance, total)
    if shelf.owned + quantity > shelf.owned_max:
        raise InvalidAmount(quantity, field="quantity")
    return _trade(wallet, record, message, now, shelf, -total, f"bought {quantity} x {item.name}")


def plan_sell(
    wallet: WalletId,
    record: WalletRecord,
    message: Sell,
    settings: ScopeSettings,
    now: float,
    shelf: Shelf,
) -> Plan[TradeResult]:
    item, quantity = shelf.item, message.quantity
    if item.sell_price is None:
        raise NotSellable(item.name)
    if shelf.owned < quantity:
        raise NotEnoughItems(item.name, shelf.owned, quantity)
    total = item.sell_price * quantity
    if record.balance + total > settings.max_balance:
        raise BalanceTooHigh(record.balance, total, settings.max_balance)
    return _trade(wallet, record, message, now, shelf, total, f"sold {quantity} x {item.name}")


def _trade(
    wallet: WalletId,
    record: WalletRecord,
    message: Buy | Sell,
    now: float,
    shelf: Shelf,
    coins: int,
    why: str,
) -> Plan[TradeResult]:
    """A checked purchase (``coins`` negative) or sale: the stock, the inventory entry
    and the coins move against the shop account together."""
    item, quantity = shelf.item, message.quantity
    # A purchase takes items off the shelf into the inventory; a sale puts them back.
    moved = quantity if isinstance(message, Buy) else -quantity
    owned = shelf.owned + moved
    draft = Draft(wallet, record, now)
    if item.stock is not None:
        draft.writes.append(_restock(wallet, item, -moved))
    draft.writes.append(_owned(wallet, item.item_id, owned))
    if coins:
        kind: TransferKind = "buy" if isinstance(message, Buy) else "sell"
        transfer = TransferId.of_request(kind, wallet.scope, wallet.user, message.key)
        draft.move(transfer, coins, SHOP, why, "shop")
    result = TradeResult(item.item_id, item.name, quantity, abs(coins), draft.record.balance, owned)
    return draft.answer(message, result)


def plan_use(
    wallet: WalletId,
    record: WalletRecord,
    message: UseItem,
    settings: ScopeSettings,
    now: float,
    shelf: Shelf,
) -> Plan[UseResult]:
    item = shelf.item
    if shelf.owned < 1:
        raise NotEnoughItems(item.name, shelf.owned, 1)
    draft = Draft(wallet, record, now)
    draft.writes.append(_owned(wallet, item.item_id, shelf.owned - 1))
    return draft.answer(message, UseResult(item.item_id, item.name, item.role_id, shelf.owned - 1))


def plan_trade_in(
    txn: Any,
    store: Store,
    wallet: WalletId,
    record: WalletRecord,
    message: Buy | Sell | UseItem,
    settings: ScopeSettings,
    now: float,
    owned_max: int,
) -> Plan[Any]:
    """Read the trade's shelf inside ``txn`` and plan the trade from it."""
    shelf = read_shelf(txn, store, wallet, message.item_id, owned_max)
    if isinstance(message, Buy):
        return plan_buy(wallet, record, message, settings, now, shelf)
    if isinstance(message, Sell):
        return plan_sell(wallet, record, message, settings, now, shelf)
    return plan_use(wallet, record, message, settings, now, shelf)


# --- the catalogue ---------------------------------------------------------------------


class ShopCatalogue:
    """The items of each scope's shop, read from and written to the store directly (no
    actor owns them: every change is a read-and-write inside one writer transaction)."""

    def __init__(
        self,
        context: EconomyContext,
        scope: Callable[[int], int],
        check_key: Callable[[str], None],
    ) -> None:
        self.context, self.store, self.limits = context, context.store, context.limits
        self._scope, self._check_key = scope, check_key

    def items(self, guild_id: int, *, include_retired: bool = False) -> list[ShopItem]:
        prefix = keys.u64(self._scope(guild_id))
        with self.store.read() as txn:
            stored = keys.prefixed(txn, self.store.db("shop"), prefix)
            found = [SHOP_ITEM.decode(value) for _, value in stored]
        return [item for item in found if include_retired or not item.retired]

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
        scope = self._scope(guild_id)
        if key:
            self._check_key(key)
        now = self.context.now()
        item = ShopItem(
            0, name.strip(), price, stock, role_id, sell_price, False, now, description, key
        )
        self.check_item(item)
        db, prefix = self.store.db("shop"), keys.u64(scope)
        items_max = self.limits.shop_items_per_scope_max

        def apply(txn: Any) -> ShopItem:
            existing = [SHOP_ITEM.decode(value) for _, value in keys.prefixed(txn, db, prefix)]
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
        scope = self._scope(guild_id)
        for name in changes:
            if name not in EDITABLE_FIELDS:
                raise InvalidInput(
                    name, f"cannot be edited; edit one of {', '.join(sorted(EDITABLE_FIELDS))}"
                )
        key, db, prefix = keys.item_key(scope, item_id), self.store.db("shop"), keys.u64(scope)
        check = self.check_item

        def apply(txn: Any) -> ShopItem:
            raw = txn.get(key, db=db)
            if raw is None:
                raise NotFound("item", item_id)
            updated = dataclasses.replace(SHOP_ITEM.decode(raw), **changes)
            updated.name = updated.name.strip()
            check(updated)
            if "name" in changes or changes.get("retired") is False:
                for _, value in keys.prefixed(txn, db, prefix):
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

    def inventory(self, scope: int, user: int) -> list[InventoryLine]:
        """What ``user`` owns in ``scope`` (the caller has checked both)."""
        lines = []
        with self.store.read() as txn:
            shop = self.store.db("shop")
            owned = keys.prefixed(txn, self.store.db("inventory"), keys.wallet_key(scope, user))
            for key, value in owned:
                item_id = keys.read_u64(key, 16)
                raw = txn.get(keys.item_key(scope, item_id), db=shop)
                assert raw is not None, ("inventory entry without item", scope, item_id)
                lines.append(InventoryLine(SHOP_ITEM.decode(raw), int.from_bytes(value, "big")))
        return lines

    def check_item(self, item: ShopItem) -> None:
        limits = self.limits
        if not 1 <= len(item.name) <= limits.item_name_chars_max:
            raise InvalidInput("name", f"1 to {limits.item_name_chars_max} characters")
        if item.name.lstrip("#").isdigit():
            # Items are found by id when named by digits, so such a name could never be used.
            raise InvalidInput("name", "must not be only digits; add a letter")
        if len(item.description) > limits.reason_chars_max:
            raise InvalidInput("description", f"at most {limits.reason_chars_max} characters")
        for name in ("price", "stock", "sell_price", "role_id"):
            value = getattr(item, name)
            if value is None and name != "price":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidInput(name, "must be a whole number of 0 or more")
        ceiling = limits.item_price_coins_max
        if item.price > ceiling or (item.sell_price or 0) > ceiling:
            raise InvalidInput("price", f"at most {ceiling}")
