"""The dashboard's forms: a guild's settings and its shop's items, shown and changed.

Writes go through the same domain calls as the admin commands (``Economy.update_settings``,
``create_item``, ``edit_item``, ``retire_item``), so they are validated by the same code,
and each appends an entry to the audit log; the form's one-use request id is the
idempotency key of what it changes. Parsing a form is done here, at the boundary.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from actors import ScopeSettings, ShopItem
from actors.errors import CroupierError, InvalidInput, NotFound
from bot.commands.render import money
from bot.commands.shop import item_result
from bot.dispatch import REFUSALS, user_error
from bot.http.dashboard_auth import (
    Role,
)
from bot.http.dashboard_base import DashboardBase, Guard, Refused, form_request_id
from bot.inputs import (
    OversizedNumber,
    clean_text,
    number_from_text,
    snowflake,
)
from limits import integer_option_max, setting_value_chars_max


class FormPages(DashboardBase):
    """The settings and shop pages, and the forms that change them."""

    async def _settings(self, request: Request) -> Response:
        if request.method == "GET":
            guard = await self._guard(request)
            current = self.economy.settings(guard.guild.id)
            return self._settings_page(request, guard, current.public(), None, 200)
        form = await self._form(request)
        guard = await self._guard(request, form)
        current = self.economy.settings(guard.guild.id)
        try:
            changes = parse_settings_form(current, form)
            if changes:
                request_id = form_request_id(form)
                updated = await self.economy.update_settings(guard.guild.id, changes)
                await self._record(
                    guard,
                    request_id,
                    "settings.update",
                    "settings",
                    {name: getattr(current, name) for name in changes},
                    {name: getattr(updated, name) for name in changes},
                )
        except InvalidInput as error:
            shown = {**current.public(), **{k: v for k, v in form.items() if k in current.public()}}
            return self._settings_page(request, guard, shown, error, 400)
        notice = "settings" if changes else "unchanged"
        return self._back(guard, "settings", notice)

    def _settings_page(
        self,
        request: Request,
        guard: Guard,
        values: Mapping[str, Any],
        error: InvalidInput | None,
        status: int,
    ) -> Response:
        fields = [
            {"name": name, "label": _label(name), "number": kind == "int", "value": values[name]}
            for name, kind in ScopeSettings.editable().items()
        ]
        return self._render(
            request,
            "settings.html",
            guard.session,
            guard=guard,
            section="settings",
            fields=fields,
            error=error,
            status=status,
        )

    async def _shop(self, request: Request) -> Response:
        if request.method == "GET":
            guard = await self._guard(request)
            roles = await self.oauth.roles(guard.guild.id)
            return self._shop_page(request, guard, roles, None, {}, 200)
        form = await self._form(request)
        guard = await self._guard(request, form)
        roles = await self.oauth.roles(guard.guild.id)
        try:
            request_id = form_request_id(form)
            fields = self._item_fields(form, roles, current=None)
            item = await self.economy.create_item(
                guard.guild.id, **fields, key=f"dashboard:{request_id}"
            )
            await self._record(
                guard, request_id, "item.create", f"item:{item.item_id}", {}, item_result(item)
            )
        except REFUSALS as refusal:
            return self._shop_page(request, guard, roles, user_error(refusal), form, 400)
        return self._back(guard, "shop", "created")

    def _shop_page(
        self,
        request: Request,
        guard: Guard,
        roles: tuple[Role, ...],
        error: CroupierError | None,
        values: Mapping[str, str],
        status: int,
    ) -> Response:
        guild_id = guard.guild.id
        settings = self.economy.settings(guild_id)
        items = self.economy.items(guild_id, include_retired=True)
        return self._render(
            request,
            "shop.html",
            guard.session,
            guard=guard,
            section="shop",
            items=items,
            roles=roles,
            role_names={role.id: role.name for role in roles},
            price=lambda amount: money(settings, amount),
            error=error,
            values=values,
            status=status,
        )

    async def _item(self, request: Request) -> Response:
        if request.method == "GET":
            guard = await self._guard(request)
            item = self._find_item(guard, request)
            roles = await self.oauth.roles(guard.guild.id)
            return self._item_page(request, guard, item, roles, None, _item_form(item), 200)
        form = await self._form(request)
        guard = await self._guard(request, form)
        item = self._find_item(guard, request)
        roles = await self.oauth.roles(guard.guild.id)
        try:
            request_id = form_request_id(form)
            fields = self._item_fields(form, roles, current=item)
            changes = {k: v for k, v in fields.items() if getattr(item, k) != v}
            if not changes:
                return self._back(guard, f"shop/{item.item_id}", "unchanged")
            updated = await self.economy.edit_item(guard.guild.id, item.item_id, **changes)
            await self._record(
                guard,
                request_id,
                "item.edit",
                f"item:{item.item_id}",
                item_result(item),
                item_result(updated),
            )
        except REFUSALS as refusal:
            return self._item_page(request, guard, item, roles, user_error(refusal), form, 400)
        return self._back(guard, f"shop/{item.item_id}", "edited")

    def _item_page(
        self,
        request: Request,
        guard: Guard,
        item: ShopItem,
        roles: tuple[Role, ...],
        error: CroupierError | None,
        values: Mapping[str, str],
        status: int,
    ) -> Response:
        return self._render(
            request,
            "item.html",
            guard.session,
            guard=guard,
            section="shop",
            item=item,
            roles=roles,
            error=error,
            values=values,
            status=status,
        )

    async def _retire(self, request: Request) -> Response:
        form = await self._form(request)
        guard = await self._guard(request, form)
        item = self._find_item(guard, request)
        request_id = form_request_id(form)
        if item.retired:
            return self._back(guard, "shop", "unchanged")
        retired = await self.economy.retire_item(guard.guild.id, item.item_id)
        await self._record(
            guard,
            request_id,
            "item.retire",
            f"item:{item.item_id}",
            item_result(item),
            item_result(retired),
        )
        return self._back(guard, "shop", "retired")

    def _find_item(self, guard: Guard, request: Request) -> ShopItem:
        text = request.path_params["item"]
        try:
            if not (text.isascii() and text.isdigit() and len(text) <= 20):
                raise NotFound("item", text)
            return self.economy.find_item(guard.guild.id, int(text))
        except NotFound:
            raise Refused(404, "There is no such item.") from None

    def _item_fields(
        self, form: Mapping[str, str], roles: tuple[Role, ...], *, current: ShopItem | None
    ) -> dict[str, Any]:
        """The item a form describes, parsed at the boundary; the economy checks the rest."""
        limits = self.economy.limits
        role_id: int | None = None
        if form.get("role", ""):
            role_id = snowflake(form["role"], "role")
            known = {role.id for role in roles} | {current.role_id if current else None}
            if role_id not in known:
                raise InvalidInput("role", "is not a role of this server; pick one from the list")
        return {
            "name": clean_text(
                form.get("name", ""), "name", chars_max=limits.item_name_chars_max
            ).strip(),
            "price": parse_whole(form.get("price", ""), "price", required=True),
            "stock": parse_whole(form.get("stock", ""), "stock", required=False),
            "sell_price": parse_whole(form.get("sell_price", ""), "sell_price", required=False),
            "role_id": role_id,
            "description": clean_text(
                form.get("description", ""), "description", chars_max=limits.reason_chars_max
            ).strip(),
        }


def parse_settings_form(current: ScopeSettings, form: Mapping[str, str]) -> dict[str, Any]:
    """The settings a form changes, typed as ``update_settings`` wants them. A setting
    the form leaves out stays as it is."""
    changes: dict[str, Any] = {}
    for name, kind in ScopeSettings.editable().items():
        if name not in form:
            continue
        text = clean_text(form[name], name, chars_max=setting_value_chars_max).strip()
        value: int | str = text
        if kind == "int":
            figure = number_from_text(text.replace(",", "").replace("_", ""))
            if figure is None or isinstance(figure, OversizedNumber):
                raise InvalidInput(name, f"{text!r} is not a whole number")
            value = figure
        if value != getattr(current, name):
            changes[name] = value
    return changes


def parse_whole(text: str, field: str, *, required: bool) -> int | None:
    """A form's whole number of 0 or more; empty means none where that is allowed."""
    text = text.strip().replace(",", "").replace("_", "")
    if not text:
        if required:
            raise InvalidInput(field, "is required")
        return None
    figure = number_from_text(text)
    if figure is None or isinstance(figure, OversizedNumber) or figure < 0:
        raise InvalidInput(field, "must be a whole number of 0 or more")
    if figure > integer_option_max:
        raise InvalidInput(field, f"must be at most {integer_option_max}")
    return figure


def _item_form(item: ShopItem) -> dict[str, str]:
    """An item as its edit form shows it."""
    return {
        "name": item.name,
        "price": str(item.price),
        "stock": "" if item.stock is None else str(item.stock),
        "sell_price": "" if item.sell_price is None else str(item.sell_price),
        "role": "" if item.role_id is None else str(item.role_id),
        "description": item.description,
    }


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()
