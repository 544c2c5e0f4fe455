"""The HTTP API's shop routes: the items of a guild's shop, creating, editing, retiring."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actors import ShopItem
from actors.errors import (
    InvalidInput,
    NotFound,
)
from bot.commands.shop import item_result
from bot.http.api_base import ApiBase, Call, only_fields, path_number
from bot.inputs import (
    clean_text,
    snowflake,
    whole_number,
)

_ITEM_OPTIONAL = ("stock", "sell_price", "role_id", "description")


class ShopRoutes(ApiBase):
    """``/guilds/{guild}/items`` and below."""

    async def _items(self, call: Call) -> tuple[int, dict[str, Any]]:
        text = call.query.get("include_retired", "false")
        if text not in ("true", "false"):
            raise InvalidInput("include_retired", "must be true or false")
        found = self.economy.items(call.guild, include_retired=text == "true")
        return 200, {"guild": str(call.guild), "items": [_item(item) for item in found]}

    async def _create_item(self, call: Call) -> tuple[int, dict[str, Any]]:
        body = only_fields(call.body, required=("name", "price"), optional=_ITEM_OPTIONAL)
        fields = self._item_fields(body)
        item = await self.economy.create_item(
            call.guild,
            name=fields["name"],
            price=fields["price"],
            stock=fields.get("stock"),
            role_id=fields.get("role_id"),
            sell_price=fields.get("sell_price"),
            description=fields.get("description", ""),
            key=call.key,
        )
        await self._audit(call, "item.create", f"item:{item.item_id}", {}, _item(item))
        return 201, _item(item)

    async def _edit_item(self, call: Call) -> tuple[int, dict[str, Any]]:
        item_id = path_number(call.path["item"], "item")
        body = only_fields(call.body, required=(), optional=("name", "price", *_ITEM_OPTIONAL))
        if not body:
            raise InvalidInput(
                "body", f"give at least one of name, price, {', '.join(_ITEM_OPTIONAL)}"
            )
        before = self._find_item(call.guild, item_id)
        item = await self.economy.edit_item(call.guild, item_id, **self._item_fields(body))
        await self._audit(call, "item.edit", f"item:{item_id}", _item(before), _item(item))
        return 200, _item(item)

    async def _retire_item(self, call: Call) -> tuple[int, dict[str, Any]]:
        item_id = path_number(call.path["item"], "item")
        only_fields(call.body, required=(), optional=())
        before = self._find_item(call.guild, item_id)
        item = await self.economy.retire_item(call.guild, item_id)
        await self._audit(call, "item.retire", f"item:{item_id}", _item(before), _item(item))
        return 200, _item(item)

    def _find_item(self, guild: int, item_id: int) -> ShopItem:
        for item in self.economy.items(guild, include_retired=True):
            if item.item_id == item_id:
                return item
        raise NotFound("item", item_id)

    def _item_fields(self, body: Mapping[str, Any]) -> dict[str, Any]:
        limits = self.economy.limits
        price_max = limits.item_price_coins_max
        fields: dict[str, Any] = {}
        if "name" in body:
            fields["name"] = clean_text(body["name"], "name", chars_max=limits.item_name_chars_max)
        if "price" in body:
            fields["price"] = whole_number(body["price"], "price", minimum=0, maximum=price_max)
        for name, maximum in (
            ("stock", limits.inventory_item_count_max),
            ("sell_price", price_max),
        ):
            if name in body:
                value = body[name]
                fields[name] = (
                    None if value is None else whole_number(value, name, minimum=0, maximum=maximum)
                )
        if "role_id" in body:
            role = body["role_id"]
            fields["role_id"] = None if role is None else snowflake(role, "role_id")
        if "description" in body:
            fields["description"] = clean_text(
                body["description"], "description", chars_max=limits.reason_chars_max
            )
        return fields


def _item(item: ShopItem) -> dict[str, Any]:
    """An item as every door shows it, with its role id as a string: ids do not fit a
    JavaScript number."""
    role_id = None if item.role_id is None else str(item.role_id)
    return {**item_result(item), "role_id": role_id}
