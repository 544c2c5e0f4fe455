"""The shop for admins: ``/shop-add``, ``/shop-edit`` and ``/shop-retire`` (Manage Server).

Every change is recorded in the audit log with the item before and after. An item that
grants a role the bot cannot give is still saved, with a warning to the admin, because
the fix (moving the bot's role up) is in the server's settings, not in the item.
"""

from __future__ import annotations

import re
from typing import Any

from actors import ShopItem
from actors.errors import InvalidInput
from bot.commands.common import EconomyGroup, item_option, key_of
from bot.commands.render import role_mention
from bot.commands.shop import chosen_item, item_result, item_text
from bot.model import Command, Field, Invocation, Option, OptionKind, Reply
from limits import Limits, snowflake_id_max

# Discord snowflakes are unsigned 64-bit numbers.
_ROLE = re.compile(r"<@&([0-9]{1,20})>|([0-9]{1,20})")


class ShopAdminCommands(EconomyGroup):
    """Adding, changing and retiring the shop's items."""

    def commands(self) -> tuple[Command, ...]:
        limits = self.economy.limits
        item = item_option(limits.item_name_chars_max)
        return (
            Command(
                "shop-add",
                "Put a new item up for sale",
                _add_options(limits),
                self._shop_add,
                admin_only=True,
            ),
            Command(
                "shop-edit",
                "Change an item's price, stock, buy-back price, name, role or description",
                (item, *_edit_options(limits)),
                self._shop_edit,
                admin_only=True,
            ),
            Command(
                "shop-retire",
                "Stop selling an item (owners keep theirs)",
                (item,),
                self._shop_retire,
                admin_only=True,
            ),
        )

    async def _shop_add(self, inv: Invocation) -> Reply:
        opts = inv.options
        item = await self.economy.create_item(
            inv.guild_id,
            name=opts["name"],
            price=opts["price"],
            stock=opts.get("stock"),
            role_id=_role(opts["role"]) if "role" in opts else None,
            sell_price=opts.get("sell_price"),
            description=opts.get("description", ""),
            key=key_of(inv),
        )
        await self._audit(inv, "item.create", f"item:{item.item_id}", {}, item_result(item))
        return self._item_reply("Item added", item, inv.guild_id, warning=_role_warning(inv, item))

    async def _shop_edit(self, inv: Invocation) -> Reply:
        changes: dict[str, Any] = {"price": inv.options["price"]} if "price" in inv.options else {}
        if "name" in inv.options:
            # create_item strips a new name and edit_item does not; strip here so a rename
            # follows the same rule as a creation.
            changes["name"] = inv.options["name"].strip()
        # -1 is how a whole-number option says "none": no stock limit, no buy-back.
        for name in ("stock", "sell_price"):
            if name in inv.options:
                changes[name] = None if inv.options[name] == -1 else inv.options[name]
        if "role" in inv.options:
            role = inv.options["role"].strip()
            changes["role_id"] = None if role.casefold() == "none" else _role(role)
        if "description" in inv.options:
            description = inv.options["description"].strip()
            changes["description"] = "" if description == "-" else description
        if not changes:
            raise InvalidInput(
                "item", "give at least one of price, stock, sell_price, name, role or description"
            )
        before = chosen_item(self.economy, inv)
        item = await self.economy.edit_item(inv.guild_id, before.item_id, **changes)
        await self._audit_item(inv, "item.edit", before, item)
        return self._item_reply(
            "Item changed", item, inv.guild_id, warning=_role_warning(inv, item)
        )

    async def _shop_retire(self, inv: Invocation) -> Reply:
        before = chosen_item(self.economy, inv)
        item = await self.economy.retire_item(inv.guild_id, before.item_id)
        await self._audit_item(inv, "item.retire", before, item)
        return self._item_reply("Item retired", item, inv.guild_id)

    async def _audit_item(
        self, inv: Invocation, action: str, before: ShopItem, after: ShopItem
    ) -> None:
        await self._audit(
            inv, action, f"item:{after.item_id}", item_result(before), item_result(after)
        )

    def _item_reply(self, title: str, item: ShopItem, guild_id: int, *, warning: str = "") -> Reply:
        settings = self._settings(guild_id)
        fields: tuple[Field, ...] = (Field("Details", item_text(settings, item), inline=False),)
        if warning:
            fields += (Field("Warning", warning, inline=False),)
        return Reply(
            title=title,
            description=f"**#{item.item_id} {item.name}**"
            + (" is no longer sold; owners keep theirs." if item.retired else ""),
            fields=fields,
            result={**item_result(item), "warning": warning} if warning else item_result(item),
        )


def _role_warning(inv: Invocation, item: ShopItem) -> str:
    """What to tell an admin whose item grants a role the bot cannot give."""
    if item.role_id is None or inv.roles is None or inv.roles.can_grant(item.role_id) is not False:
        return ""
    return (
        f"Croupier cannot give {role_mention(item.role_id)}: it sits at or above Croupier's "
        "own highest role. Move Croupier's role above it (Server Settings, Roles), or /use "
        "of this item will be refused."
    )


def _role(text: str) -> int:
    """A role id from a role mention (``<@&123>``) or a bare id."""
    found = _ROLE.fullmatch(text.strip())
    role_id = int(found.group(1) or found.group(2)) if found else 0
    if not 0 < role_id <= snowflake_id_max:
        raise InvalidInput("role", f"{text!r} is not a role; mention one or give its id")
    return role_id


def _add_options(limits: Limits) -> tuple[Option, ...]:
    """The options of ``/shop-add``: a new item's every field."""
    return (
        Option("name", OptionKind.STRING, "Item name", max_length=limits.item_name_chars_max),
        Option("price", OptionKind.INTEGER, "Price of one", min_value=0),
        Option(
            "stock",
            OptionKind.INTEGER,
            "Units for sale (default: no limit)",
            required=False,
            min_value=0,
        ),
        Option(
            "role",
            OptionKind.STRING,
            "Role granted on use (mention or id)",
            required=False,
            max_length=32,
        ),
        Option(
            "sell_price",
            OptionKind.INTEGER,
            "Buy-back price (default: none)",
            required=False,
            min_value=0,
        ),
        Option(
            "description",
            OptionKind.STRING,
            "Shown in the shop",
            required=False,
            max_length=limits.reason_chars_max,
        ),
    )


def _edit_options(limits: Limits) -> tuple[Option, ...]:
    """The options of ``/shop-edit`` after the item: each field it may change."""
    return (
        Option("price", OptionKind.INTEGER, "New price of one", required=False, min_value=0),
        Option(
            "stock",
            OptionKind.INTEGER,
            "Units for sale; -1 for no limit",
            required=False,
            min_value=-1,
        ),
        Option(
            "sell_price",
            OptionKind.INTEGER,
            "Buy-back price; -1 for none",
            required=False,
            min_value=-1,
        ),
        Option(
            "name",
            OptionKind.STRING,
            "New name",
            required=False,
            max_length=limits.item_name_chars_max,
        ),
        Option(
            "role",
            OptionKind.STRING,
            "Role granted on use (mention or id); none for no role",
            required=False,
            max_length=32,
        ),
        Option(
            "description",
            OptionKind.STRING,
            "Shown in the shop; - for none",
            required=False,
            max_length=limits.reason_chars_max,
        ),
    )
