"""The economy's commands: wallets, rewards, payments, listings, the shop and admin tools.

Each handler reads its typed options, makes one call to the ``Economy`` API with the
interaction id as the idempotency key (so a duplicated delivery changes nothing twice),
and renders the outcome as an embed in the scope's currency, with the figures in
``Reply.result`` for scripts. Paged replies carry Previous/Next buttons whose custom id
holds everything a press needs (``lb:<page>``, ``hist:<user>:<page>``, ``shop:<page>``,
``inv:<user>:<page>``), so they keep working after a restart with no state in memory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar

from actors.audit import AuditLog
from actors.economy import Economy
from actors.errors import (
    BotRecipient,
    CroupierError,
    InvalidInput,
    NotFound,
    OnCooldown,
    RoleNotGrantable,
)
from actors.records import HistoryEntry, ScopeSettings, ShopItem
from actors.wallet import TradeResult, UseResult
from bot.commands.render import clip, mention, money, pager, role_mention, signed_money, timestamp
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
    UserRef,
)

# Discord refuses an embed over 6,000 characters in all, so listings are paged to stay
# well below it: ten shop items with 200-character descriptions, or 25 short lines.
shop_page_items_max = 10
inventory_page_lines_max = 25
history_reason_chars_max = 60
# Discord snowflakes are unsigned 64-bit numbers.
_snowflake_max = 2**64 - 1
_setting_value_chars_max = 100

_DIGITS = re.compile(r"[0-9]{1,20}")
_WHOLE = re.compile(r"-?[0-9]{1,20}")
_ROLE = re.compile(r"<@&([0-9]{1,20})>|([0-9]{1,20})")
_ITEM_ID = re.compile(r"#([0-9]{1,20})")

T = TypeVar("T")


class NotYourButton(CroupierError):
    """A press on buttons under another member's private listing (history, inventory)."""

    code = "not_your_button"

    def __init__(self, owner: int) -> None:
        super().__init__(
            f"these buttons belong to {mention(owner)}; run the command to get your own"
        )
        self.owner = owner


class RewardCooldown(CroupierError):
    """``OnCooldown`` with the absolute time the reward is ready added to its message."""

    code = OnCooldown.code

    def __init__(self, cause: OnCooldown) -> None:
        super().__init__(f"{cause.message} ({timestamp(cause.ready_at, 'f')})")
        self.action = cause.action
        self.ready_at = cause.ready_at


class EconomyCommands:
    """The economy's commands and button routes, over one ``Economy``."""

    def __init__(self, economy: Economy, audit: AuditLog | None = None) -> None:
        self.economy = economy
        self.audit = audit or AuditLog(economy.store, economy.context.now)

    def commands(self) -> tuple[Command, ...]:
        return self._member_commands() + self._admin_commands()

    def buttons(self) -> tuple[ButtonRoute, ...]:
        return (
            ButtonRoute("lb", self._press_leaderboard),
            ButtonRoute("hist", self._press_history),
            ButtonRoute("shop", self._press_shop),
            ButtonRoute("inv", self._press_inventory),
        )

    def _member_commands(self) -> tuple[Command, ...]:
        limits = self.economy.limits
        item = _item_option(limits.item_name_chars_max)
        reason = Option(
            "reason",
            OptionKind.STRING,
            "What it is for",
            required=False,
            max_length=limits.reason_chars_max,
        )
        quantity = Option(
            "quantity",
            OptionKind.INTEGER,
            "How many (default 1)",
            required=False,
            min_value=1,
            max_value=limits.inventory_item_count_max,
        )
        return (
            Command(
                "balance",
                "Show your balance or another member's",
                (
                    Option(
                        "user", OptionKind.USER, "Whose balance (default: yours)", required=False
                    ),
                ),
                self._balance,
            ),
            Command("daily", "Collect your daily reward", (), self._daily),
            Command("work", "Work for a few coins", (), self._work),
            Command(
                "pay",
                "Pay another member",
                (
                    Option("user", OptionKind.USER, "Who gets the money"),
                    Option("amount", OptionKind.INTEGER, "How much", min_value=1),
                    reason,
                ),
                self._pay,
            ),
            Command(
                "leaderboard",
                "The richest members",
                (_page_option(limits.leaderboard_pages_max),),
                self._leaderboard,
            ),
            Command("history", "Your recent transfers", (_page_option(),), self._history),
            Command("shop", "What the shop sells", (_page_option(),), self._shop),
            Command("buy", "Buy an item from the shop", (item, quantity), self._buy),
            Command("sell", "Sell an item back to the shop", (item, quantity), self._sell),
            Command("inventory", "The items you own", (_page_option(),), self._inventory),
            Command("use", "Use one of your items", (item,), self._use),
        )

    def _admin_commands(self) -> tuple[Command, ...]:
        limits = self.economy.limits
        reason = Option(
            "reason", OptionKind.STRING, "Why (kept in history)", max_length=limits.reason_chars_max
        )
        member = Option("user", OptionKind.USER, "Which member")
        item = _item_option(limits.item_name_chars_max)
        settings = tuple(ScopeSettings.editable())
        name = Option("name", OptionKind.STRING, "Item name", max_length=limits.item_name_chars_max)
        return (
            Command(
                "economy-config",
                "Show the economy settings, or change one",
                (
                    Option(
                        "setting",
                        OptionKind.STRING,
                        "Which setting",
                        required=False,
                        choices=settings,
                    ),
                    Option(
                        "value",
                        OptionKind.STRING,
                        "Its new value",
                        required=False,
                        max_length=_setting_value_chars_max,
                    ),
                ),
                self._config,
                admin_only=True,
            ),
            Command(
                "money-add",
                "Give a member money from the treasury",
                (member, Option("amount", OptionKind.INTEGER, "How much", min_value=1), reason),
                self._money_add,
                admin_only=True,
            ),
            Command(
                "money-remove",
                "Take money from a member into the treasury",
                (member, Option("amount", OptionKind.INTEGER, "How much", min_value=1), reason),
                self._money_remove,
                admin_only=True,
            ),
            Command(
                "money-set",
                "Set a member's balance",
                (member, Option("amount", OptionKind.INTEGER, "New balance", min_value=0), reason),
                self._money_set,
                admin_only=True,
            ),
            Command(
                "reset-user",
                "Reset a member to the starting balance, no items, no cooldowns",
                (member, reason),
                self._reset_user,
                admin_only=True,
            ),
            Command(
                "shop-add",
                "Put a new item up for sale",
                (
                    name,
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
                ),
                self._shop_add,
                admin_only=True,
            ),
            Command(
                "shop-edit",
                "Change an item's price, stock, buy-back price, name, role or description",
                (
                    item,
                    Option(
                        "price", OptionKind.INTEGER, "New price of one", required=False, min_value=0
                    ),
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
                ),
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
            Command(
                "transfer-refund",
                "Return a parked transfer's money to the member who sent it",
                (
                    Option(
                        "id",
                        OptionKind.STRING,
                        "The parked transfer's id",
                        max_length=limits.transfer_id_bytes_max,
                    ),
                ),
                self._transfer_refund,
                admin_only=True,
            ),
        )

    # --- wallets and rewards -----------------------------------------------------------

    def _settings(self, guild_id: int) -> ScopeSettings:
        return self.economy.settings(guild_id)

    async def _balance(self, inv: Invocation) -> Reply:
        who = _member(inv.options.get("user", UserRef(inv.user_id)))
        view = await self.economy.balance(inv.guild_id, who.id)
        settings = self._settings(inv.guild_id)
        fields: tuple[Field, ...] = ()
        if who.id == inv.user_id:
            fields = (
                Field("Daily", self._ready(view.daily_ready_at)),
                Field("Work", self._ready(view.work_ready_at)),
            )
        return Reply(
            title="Balance",
            description=f"{mention(who.id)} has {money(settings, view.balance)}.",
            fields=fields,
            result={"user": who.id, "balance": view.balance},
        )

    def _ready(self, ready_at: float) -> str:
        return (
            "ready now"
            if ready_at <= self.economy.context.now()
            else f"ready {timestamp(ready_at)}"
        )

    async def _daily(self, inv: Invocation) -> Reply:
        return await self._reward(inv, "daily")

    async def _work(self, inv: Invocation) -> Reply:
        return await self._reward(inv, "work")

    async def _reward(self, inv: Invocation, kind: Literal["daily", "work"]) -> Reply:
        try:
            got = await self.economy.reward(inv.guild_id, inv.user_id, kind, _key(inv))
        except OnCooldown as err:
            raise RewardCooldown(err) from err
        settings = self._settings(inv.guild_id)
        return Reply(
            title="Daily reward" if kind == "daily" else "Work done",
            description=(
                f"You earned {money(settings, got.amount)}. "
                f"Next {kind} {timestamp(got.next_ready_at)} ({timestamp(got.next_ready_at, 'f')})."
            ),
            fields=(Field("Balance", money(settings, got.balance)),),
            result={
                "kind": kind,
                "amount": got.amount,
                "balance": got.balance,
                "next_ready_at": got.next_ready_at,
            },
        )

    async def _pay(self, inv: Invocation) -> Reply:
        to: UserRef = inv.options["user"]
        amount: int = inv.options["amount"]
        reason: str = inv.options.get("reason", "")
        out = await self.economy.pay(
            inv.guild_id, inv.user_id, to.id, amount, _key(inv), reason=reason, to_is_bot=to.bot
        )
        settings = self._settings(inv.guild_id)
        sent, whom = money(settings, out.amount), mention(out.to_user)
        description = {
            "credited": f"You sent {sent} to {whom}.",
            "returned": f"{whom} is at the maximum balance, so your {sent} came back to you.",
            "pending": f"You sent {sent}; it reaches {whom} in a moment.",
        }[out.status]
        fields: tuple[Field, ...] = (Field("Your balance", money(settings, out.balance)),)
        if reason.strip():
            fields += (Field("Reason", reason.strip(), inline=False),)
        return Reply(
            title="Payment returned" if out.status == "returned" else "Payment sent",
            description=description,
            fields=fields,
            result={
                "amount": out.amount,
                "to_user": out.to_user,
                "status": out.status,
                "transfer_id": out.transfer_id,
                "balance": out.balance,
            },
        )

    async def _transfer_refund(self, inv: Invocation) -> Reply:
        """A transfer parked because it could not be delivered goes back to its sender,
        once; a second refund is refused (``already_refunded``)."""
        got = await self.economy.refund_parked(
            inv.options["id"], by=f"admin {inv.user_id}", guild_id=inv.guild_id
        )
        settings = self._settings(inv.guild_id)
        return Reply(
            title="Transfer refunded",
            description=f"{money(settings, got.amount)} went back to {mention(got.user)}.",
            fields=(Field("Their balance", money(settings, got.balance)),),
            result={
                "transfer_id": got.transfer_id,
                "user": got.user,
                "amount": got.amount,
                "balance": got.balance,
            },
        )

    # --- paged listings ----------------------------------------------------------------

    async def _leaderboard(self, inv: Invocation) -> Reply:
        return self._leaderboard_page(inv.guild_id, inv.options.get("page", 1))

    async def _press_leaderboard(self, press: ButtonPress) -> Reply:
        (page,) = _button_numbers(press, 1)
        return self._leaderboard_page(press.guild_id, page)

    def _leaderboard_page(self, guild_id: int, page: int) -> Reply:
        board = self.economy.leaderboard(guild_id, page)
        settings = self._settings(guild_id)
        lines = [
            f"**{row.rank}.** {mention(row.user)} — {money(settings, row.balance)}"
            for row in board.rows
        ]
        return Reply(
            title="Leaderboard",
            description="\n".join(lines) or "Nobody is on this page.",
            footer=f"Page {board.page}",
            buttons=pager("lb", board.page, has_next=board.has_next),
            result={
                "page": board.page,
                "has_next": board.has_next,
                "rows": [
                    {"rank": r.rank, "user": r.user, "balance": r.balance} for r in board.rows
                ],
            },
        )

    async def _history(self, inv: Invocation) -> Reply:
        return self._history_page(inv.guild_id, inv.user_id, inv.options.get("page", 1))

    async def _press_history(self, press: ButtonPress) -> Reply:
        owner, page = _button_numbers(press, 2)
        _check_owner(press, owner)
        return self._history_page(press.guild_id, owner, page)

    def _history_page(self, guild_id: int, user: int, page: int) -> Reply:
        got = self.economy.history(guild_id, user, page)
        settings = self._settings(guild_id)
        lines = [_history_line(settings, entry) for entry in got.entries]
        return Reply(
            title="History",
            description="\n".join(lines) or "No transfers yet.",
            footer=f"Newest first · page {got.page} of {got.pages}",
            buttons=pager(f"hist:{user}", got.page, has_next=got.page < got.pages),
            result={
                "user": user,
                "page": got.page,
                "pages": got.pages,
                "entries": [history_result(entry) for entry in got.entries],
            },
        )

    async def _shop(self, inv: Invocation) -> Reply:
        return self._shop_page(inv.guild_id, inv.options.get("page", 1))

    async def _press_shop(self, press: ButtonPress) -> Reply:
        (page,) = _button_numbers(press, 1)
        return self._shop_page(press.guild_id, page)

    def _shop_page(self, guild_id: int, page: int) -> Reply:
        items, page, pages = _page_of(self.economy.items(guild_id), page, shop_page_items_max)
        settings = self._settings(guild_id)
        return Reply(
            title="Shop",
            description="Buy with /buy, naming an item or its #id."
            if items
            else "The shop is empty; admins add items with /shop-add.",
            fields=tuple(
                Field(f"#{item.item_id} {item.name}", _item_text(settings, item), inline=False)
                for item in items
            ),
            footer=f"Page {page} of {pages}",
            buttons=pager("shop", page, has_next=page < pages),
            result={"page": page, "pages": pages, "items": [item_result(i) for i in items]},
        )

    async def _inventory(self, inv: Invocation) -> Reply:
        return self._inventory_page(inv.guild_id, inv.user_id, inv.options.get("page", 1))

    async def _press_inventory(self, press: ButtonPress) -> Reply:
        owner, page = _button_numbers(press, 2)
        _check_owner(press, owner)
        return self._inventory_page(press.guild_id, owner, page)

    def _inventory_page(self, guild_id: int, user: int, page: int) -> Reply:
        owned = self.economy.inventory(guild_id, user)
        lines, page, pages = _page_of(owned, page, inventory_page_lines_max)
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

    # --- the shop ----------------------------------------------------------------------

    def _item(self, inv: Invocation) -> ShopItem:
        text: str = inv.options["item"].strip()
        by_id = _ITEM_ID.fullmatch(text)
        return self.economy.find_item(inv.guild_id, int(by_id.group(1)) if by_id else text)

    async def _buy(self, inv: Invocation) -> Reply:
        item, quantity = self._item(inv), inv.options.get("quantity", 1)
        got = await self.economy.buy(inv.guild_id, inv.user_id, item.item_id, quantity, _key(inv))
        settings = self._settings(inv.guild_id)
        spent = money(settings, got.total)
        return _trade_reply(
            settings, "Bought", f"You bought {got.quantity:,} × {got.name} for {spent}.", got
        )

    async def _sell(self, inv: Invocation) -> Reply:
        item, quantity = self._item(inv), inv.options.get("quantity", 1)
        got = await self.economy.sell(inv.guild_id, inv.user_id, item.item_id, quantity, _key(inv))
        settings = self._settings(inv.guild_id)
        earned = money(settings, got.total)
        return _trade_reply(
            settings, "Sold", f"You sold {got.quantity:,} × {got.name} for {earned}.", got
        )

    async def _use(self, inv: Invocation) -> Reply:
        item = self._item(inv)
        roles = inv.roles if item.role_id is not None else None
        if roles is None:
            got = await self.economy.use(inv.guild_id, inv.user_id, item.item_id, _key(inv))
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
            got = await self.economy.use(inv.guild_id, inv.user_id, item.item_id, _key(inv))
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

    # --- admin -------------------------------------------------------------------------

    async def _config(self, inv: Invocation) -> Reply:
        name: str | None = inv.options.get("setting")
        raw: str | None = inv.options.get("value")
        if raw is None:
            shown = self._settings(inv.guild_id).public()
            if name is not None:
                shown = {name: shown[name]}
            return Reply(
                title="Economy settings",
                description="Change one with /economy-config setting value.",
                fields=tuple(Field(key, _setting_text(value)) for key, value in shown.items()),
                result={"settings": shown},
            )
        if name is None:
            raise InvalidInput("setting", "name the setting the value is for")
        previous = getattr(self._settings(inv.guild_id), name)
        updated = await self.economy.update_settings(
            inv.guild_id, {name: _setting_value(name, raw)}
        )
        value = getattr(updated, name)
        await self._audit(inv, "settings.update", "settings", {name: previous}, {name: value})
        return Reply(
            title="Setting changed",
            description=f"**{name}** is now {_setting_text(value)}.",
            result={"setting": name, "value": value},
        )

    async def _money_add(self, inv: Invocation) -> Reply:
        return await self._adjust(inv, "add")

    async def _money_remove(self, inv: Invocation) -> Reply:
        return await self._adjust(inv, "remove")

    async def _money_set(self, inv: Invocation) -> Reply:
        return await self._adjust(inv, "set")

    async def _adjust(self, inv: Invocation, op: Literal["add", "remove", "set"]) -> Reply:
        who = _member(inv.options["user"])
        got = await self.economy.adjust(
            inv.guild_id,
            inv.user_id,
            who.id,
            op,
            inv.options["amount"],
            _key(inv),
            reason=inv.options["reason"],
        )
        await self._audit(
            inv,
            f"money.{op}",
            f"user:{who.id}",
            {"balance": got.balance - got.delta},
            {"balance": got.balance},
            inv.options["reason"],
        )
        settings = self._settings(inv.guild_id)
        return Reply(
            title="Balance adjusted",
            description=f"{mention(who.id)} now has {money(settings, got.balance)}.",
            fields=(
                Field("Change", signed_money(settings, got.delta)),
                Field("Reason", inv.options["reason"], inline=False),
            ),
            result={"user": who.id, "op": op, "delta": got.delta, "balance": got.balance},
        )

    async def _reset_user(self, inv: Invocation) -> Reply:
        who = _member(inv.options["user"])
        reason: str = inv.options["reason"]
        # The balance before is read just before the reset: the reset's own result says
        # only where it left the member.
        before = await self.economy.balance(inv.guild_id, who.id)
        got = await self.economy.reset(inv.guild_id, inv.user_id, who.id, _key(inv), reason=reason)
        await self._audit(
            inv,
            "member.reset",
            f"user:{who.id}",
            {"balance": before.balance},
            {"balance": got.balance, "items_removed": got.items_removed},
            reason,
        )
        settings = self._settings(inv.guild_id)
        return Reply(
            title="Member reset",
            description=(
                f"{mention(who.id)} is back to {money(settings, got.balance)} with no items "
                "and no cooldowns."
            ),
            fields=(
                Field("Items removed", f"{got.items_removed:,}"),
                Field("Reason", reason, inline=False),
            ),
            result={"user": who.id, "balance": got.balance, "items_removed": got.items_removed},
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
            key=_key(inv),
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
        before = self._item(inv)
        item = await self.economy.edit_item(inv.guild_id, before.item_id, **changes)
        await self._audit_item(inv, "item.edit", before, item)
        return self._item_reply(
            "Item changed", item, inv.guild_id, warning=_role_warning(inv, item)
        )

    async def _shop_retire(self, inv: Invocation) -> Reply:
        before = self._item(inv)
        item = await self.economy.retire_item(inv.guild_id, before.item_id)
        await self._audit_item(inv, "item.retire", before, item)
        return self._item_reply("Item retired", item, inv.guild_id)

    async def _audit_item(
        self, inv: Invocation, action: str, before: ShopItem, after: ShopItem
    ) -> None:
        await self._audit(
            inv, action, f"item:{after.item_id}", item_result(before), item_result(after)
        )

    async def _audit(
        self,
        inv: Invocation,
        action: str,
        target: str,
        before: dict[str, Any],
        after: dict[str, Any],
        reason: str = "",
    ) -> None:
        await audit_command(self.audit, inv, action, target, before, after, reason)

    def _item_reply(self, title: str, item: ShopItem, guild_id: int, *, warning: str = "") -> Reply:
        settings = self._settings(guild_id)
        fields: tuple[Field, ...] = (Field("Details", _item_text(settings, item), inline=False),)
        if warning:
            fields += (Field("Warning", warning, inline=False),)
        return Reply(
            title=title,
            description=f"**#{item.item_id} {item.name}**"
            + (" is no longer sold; owners keep theirs." if item.retired else ""),
            fields=fields,
            result={**item_result(item), "warning": warning} if warning else item_result(item),
        )


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


def _role_warning(inv: Invocation, item: ShopItem) -> str:
    """What to tell an admin whose item grants a role the bot cannot give."""
    if item.role_id is None or inv.roles is None or inv.roles.can_grant(item.role_id) is not False:
        return ""
    return (
        f"Croupier cannot give {role_mention(item.role_id)}: it sits at or above Croupier's "
        "own highest role. Move Croupier's role above it (Server Settings, Roles), or /use "
        "of this item will be refused."
    )


async def audit_command(
    audit: AuditLog,
    inv: Invocation,
    action: str,
    target: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    reason: str = "",
) -> None:
    """Record an admin command's change in the audit log, once per interaction: the
    member who ran it is the actor, the interaction the request."""
    await audit.append(
        inv.guild_id,
        request=f"command:{inv.interaction_id}",
        actor=f"user:{inv.user_id}",
        via="command",
        action=action,
        target=target,
        before=before,
        after=after,
        reason=reason,
    )


def _key(inv: Invocation) -> str:
    return str(inv.interaction_id)


def _member(ref: UserRef) -> UserRef:
    """``ref``, refused if it is a bot: bots hold no wallets."""
    if ref.bot:
        raise BotRecipient(ref.id)
    return ref


def _page_option(pages_max: int | None = None) -> Option:
    return Option(
        "page", OptionKind.INTEGER, "Page number", required=False, min_value=1, max_value=pages_max
    )


def _item_option(name_chars_max: int) -> Option:
    return Option("item", OptionKind.STRING, "Item name or #id", max_length=name_chars_max)


def _page_of(entries: Sequence[T], page: int, size: int) -> tuple[Sequence[T], int, int]:
    """One page of ``entries`` (a page past the end shows the last), its number and count."""
    pages = max(1, -(-len(entries) // size))
    page = min(max(1, page), pages)
    return entries[(page - 1) * size : page * size], page, pages


def _button_numbers(press: ButtonPress, count: int) -> list[int]:
    """The ``count`` numbers after the prefix of a custom id such as ``hist:42:3``."""
    parts = press.custom_id.split(":")[1:]
    if len(parts) != count or not all(_DIGITS.fullmatch(part) for part in parts):
        raise NotFound("button", press.custom_id)
    return [int(part) for part in parts]


def _check_owner(press: ButtonPress, owner: int) -> None:
    if press.user_id != owner:
        raise NotYourButton(owner)


def _history_line(settings: ScopeSettings, entry: HistoryEntry) -> str:
    party = entry.counterparty
    kind, _, ident = party.partition(":")
    who = mention(int(ident)) if kind == "user" and ident.isdigit() else party.replace(":", " ")
    reason = clip(entry.reason, history_reason_chars_max)
    return f"{timestamp(entry.at, 'd')} **{signed_money(settings, entry.amount)}** {who}" + (
        f" — {reason}" if reason else ""
    )


def history_result(entry: HistoryEntry) -> dict[str, Any]:
    """A history entry as plain values: the command's result and the API's answer."""
    return {
        "transfer_id": entry.transfer_id,
        "amount": entry.amount,
        "counterparty": entry.counterparty,
        "reason": entry.reason,
        "at": entry.at,
        "balance": entry.balance,
    }


def _item_text(settings: ScopeSettings, item: ShopItem) -> str:
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


def _role(text: str) -> int:
    """A role id from a role mention (``<@&123>``) or a bare id."""
    found = _ROLE.fullmatch(text.strip())
    role_id = int(found.group(1) or found.group(2)) if found else 0
    if not 0 < role_id <= _snowflake_max:
        raise InvalidInput("role", f"{text!r} is not a role; mention one or give its id")
    return role_id


def _setting_value(name: str, raw: str) -> int | str:
    """``raw`` typed as the setting needs; thousands separators are allowed in numbers."""
    if ScopeSettings.editable()[name] != "int":
        return raw.strip()
    figure = raw.strip().replace(",", "").replace("_", "")
    if not _WHOLE.fullmatch(figure):
        raise InvalidInput(name, f"{raw!r} is not a whole number")
    return int(figure)


def _setting_text(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)
