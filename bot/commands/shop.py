"""The shop for members: ``/shop``, ``/buy``, ``/sell``, ``/inventory`` and ``/use``.

An item is named by its name or its ``#id``. The shop and inventory pages carry
Previous/Next buttons (``shop:<page>``, ``inv:<user>:<page>``) that keep working after a
restart; ``/use`` of an item that grants a role grants it before the item is consumed.
How an item reads (``item_text``, ``item_result``) is shared with the shop's admin
commands, the dashboard and the audit log.
"""

from __future__ import annotations

import re
from typing import Any

from actors import Economy, ScopeSettings, ShopItem
from actors.errors import CroupierError, RoleNotGrantable
from actors.wallet import TradeResult, UseResult
from bot.commands.common import (
    EconomyGroup,
    button_numbers,
    check_owner,
    item_option,
    key_of,
    page_of,
    page_option,
)
from bot.commands.render import money, pager, role_mention
from bot.model import (
    ButtonPress,
    ButtonRoute,
    Command,
    Field,
    Invocation,
    MemberRoles,
    Option,
    OptionKind,
    Reply,
)
from limits import inventory_page_lines_max, shop_page_items_max

_ITEM_ID = re.compile(r"#([0-9]{1,20})")


class ShopCommands(EconomyGroup):
    """Browsing, trading and using the shop's items, and the buttons that page them."""

    def commands(self) -> tuple[Command, ...]:
        limits = self.economy.limits
        item = item_option(limits.item_name_chars_max)
        quantity = Option(
            "quantity",
            OptionKind.INTEGER,
            "How many (default 1)",
            required=False,
            min_value=1,
            max_value=limits.inventory_item_count_max,
        )
        return (
            Command("shop", "What the shop sells", (page_option(),), self._shop),
            Command("buy", "Buy an item from the shop", (item, quantity), self._buy),
            Command("sell", "Sell an item back to the shop", (item, quantity), self._sell),
            Command("inventory", "The items you own", (page_option(),), self._inventory),
            Command("use", "Use one of your items", (item,), self._use),
        )

    def buttons(self) -> tuple[ButtonRoute, ...]:
        return (
            ButtonRoute("shop", self._press_shop),
            ButtonRoute("inv", self._press_inventory),
        )

    async def _shop(self, inv: Invocation) -> Reply:
        return self._shop_page(inv.guild_id, inv.options.get("page", 1))

    async def _press_shop(self, press: ButtonPress) -> Reply:
        (page,) = button_numbers(press, 1)
        return self._shop_page(press.guild_id, page)

    def _shop_page(self, guild_id: int, page: int) -> Reply:
        items, page, pages = page_of(self.economy.items(guild_id), page, shop_page_items_max)
        settings = self._settings(guild_id)
        return Reply(
            title="Shop",
            description="Buy with /buy, naming an item or its #id."
            if items
            else "The shop is empty; admins add items with /shop-add.",
            fields=tuple(
                Field(f"#{item.item_id} {item.name}", item_text(settings, item), inline=False)
                for item in items
            ),
            footer=f"Page {page} of {pages}",
            buttons=pager("shop", page, has_next=page < pages),
            result={"page": page, "pages": pages, "items": [item_result(i) for i in items]},
        )

    async def _inventory(self, inv: Invocation) -> Reply:
        return self._inventory_page(inv.guild_id, inv.user_id, inv.options.get("page", 1))

    async def _press_inventory(self, press: ButtonPress) -> Reply:
        owner, page = button_numbers(press, 2)
        check_owner(press, owner)
        return self._inventory_page(press.guild_id, owner, page)

    def _inventory_page(self, guild_id: int, user: int, page: int) -> Reply:
        owned = self.economy.inventory(guild_id, user)
        lines, page, pages = page_of(owned, page, inventory_page_lines_max)
        text = [
            f"**{line.item.name}** (#{line.item.item_id}) × {line.count:,}"
            + (" · retired" if line.item.retired else "")
            for line in lines
        ]
        return Reply(
            title="Inventory",
            description="\n".join(text) or "You own no items; see /shop.",
            footer=f"Page {page} of {pages}",
            buttons=pager(f"inv:{user}", page, has_next=page < pages),
            result={
                "user": user,
                "page": page,
                "pages": pages,
                "items": [
                    {"item_id": line.item.item_id, "name": line.item.name, "count": line.count}
                    for line in lines
                ],
            },
        )

    async def _buy(self, inv: Invocation) -> Reply:
        item, quantity = chosen_item(self.economy, inv), inv.options.get("quantity", 1)
        got = await self.economy.buy(inv.guild_id, inv.user_id, item.item_id, quantity, key_of(inv))
        settings = self._settings(inv.guild_id)
        spent = money(settings, got.total)
        return _trade_reply(
            settings, "Bought", f"You bought {got.quantity:,} × {got.name} for {spent}.", got
        )

    async def _sell(self, inv: Invocation) -> Reply:
        item, quantity = chosen_item(self.economy, inv), inv.options.get("quantity", 1)
        got = await self.economy.sell(
            inv.guild_id, inv.user_id, item.item_id, quantity, key_of(inv)
        )
        settings = self._settings(inv.guild_id)
        earned = money(settings, got.total)
        return _trade_reply(
            settings, "Sold", f"You sold {got.quantity:,} × {got.name} for {earned}.", got
        )

    async def _use(self, inv: Invocation) -> Reply:
        item = chosen_item(self.economy, inv)
        roles = inv.roles if item.role_id is not None else None
        if roles is None:
            got = await self.economy.use(inv.guild_id, inv.user_id, item.item_id, key_of(inv))
            grants = () if got.role_id is None else (got.role_id,)
            return _use_reply(got, grants, warning="")
        return await self._use_granting(inv, item, roles)

    async def _use_granting(self, inv: Invocation, item: ShopItem, roles: MemberRoles) -> Reply:
        """/use of an item with a role, where the transport can grant it: the role is
        granted before the item is consumed, so a role Discord refuses (403) leaves the
        item where it was, and the grant is taken back if the use then does not happen.
        Neither step can duplicate: the grant is idempotent on Discord's side and the use
        is idempotent by the interaction's key."""
        assert item.role_id is not None
        role_id = item.role_id
        held = any(
            line.item.item_id == item.item_id and line.count > 0
            for line in self.economy.inventory(inv.guild_id, inv.user_id)
        )
        # Without a copy there is nothing to grant for, unless this is a retry of a use
        # that happened, which the use below answers from its stored result.
        added = await roles.grant(role_id) if held else False
        try:
            got = await self.economy.use(inv.guild_id, inv.user_id, item.item_id, key_of(inv))
        except CroupierError:
            # (A runtime failure is no CroupierError and passes: the outcome is unknown,
            # the item may be used, so the role stays.)
            if added:
                await roles.revoke(role_id)
            raise
        warning = ""
        if not held:
            # A retry of a use whose first attempt consumed the item: the grant of that
            # attempt is not known here, and granting again changes nothing if it went.
            try:
                await roles.grant(role_id)
            except RoleNotGrantable as refused:
                warning = refused.message
        return _use_reply(got, (), warning=warning)


def chosen_item(economy: Economy, inv: Invocation) -> ShopItem:
    """The item an invocation's ``item`` option names, by ``#id`` or by name."""
    text: str = inv.options["item"].strip()
    by_id = _ITEM_ID.fullmatch(text)
    return economy.find_item(inv.guild_id, int(by_id.group(1)) if by_id else text)


def _use_reply(got: UseResult, grant_role_ids: tuple[int, ...], *, warning: str) -> Reply:
    role = f" You now have the {role_mention(got.role_id)} role." if got.role_id else ""
    fields: tuple[Field, ...] = (Field("Left", f"{got.remaining:,}"),)
    if warning:
        role = ""
        fields += (Field("Role not granted", warning, inline=False),)
    return Reply(
        title="Item used",
        description=f"You used one {got.name}.{role}",
        fields=fields,
        grant_role_ids=grant_role_ids,
        result={
            "item_id": got.item_id,
            "name": got.name,
            "role_id": got.role_id,
            "remaining": got.remaining,
        },
    )


def item_text(settings: ScopeSettings, item: ShopItem) -> str:
    parts = [
        money(settings, item.price),
        "no stock limit" if item.stock is None else f"{item.stock:,} in stock",
        "not bought back"
        if item.sell_price is None
        else f"bought back for {money(settings, item.sell_price)}",
    ]
    if item.role_id is not None:
        parts.append(f"grants {role_mention(item.role_id)}")
    return " · ".join(parts) + (f"\n{item.description}" if item.description else "")


def item_result(item: ShopItem) -> dict[str, Any]:
    """An item as replies, the console's JSON and the audit log show it, whatever the door."""
    return {
        "item_id": item.item_id,
        "name": item.name,
        "price": item.price,
        "stock": item.stock,
        "sell_price": item.sell_price,
        "role_id": item.role_id,
        "description": item.description,
        "retired": item.retired,
    }


def _trade_reply(settings: ScopeSettings, title: str, text: str, got: TradeResult) -> Reply:
    return Reply(
        title=title,
        description=text,
        fields=(
            Field("Balance", money(settings, got.balance)),
            Field("You own", f"{got.owned:,}"),
        ),
        result={
            "item_id": got.item_id,
            "name": got.name,
            "quantity": got.quantity,
            "total": got.total,
            "balance": got.balance,
            "owned": got.owned,
        },
    )
