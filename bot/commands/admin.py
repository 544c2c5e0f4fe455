"""The economy's admin commands (Manage Server): settings, balances, resets, parked transfers.

``/economy-config`` shows or changes a scope's settings; ``/money-add``, ``/money-remove``
and ``/money-set`` move money between a member and the treasury; ``/reset-user`` puts a
member back to the start; ``/transfer-refund`` returns a parked transfer to its sender.
Every change is recorded in the audit log, with the member who ran the command.
"""

from __future__ import annotations

import re
from typing import Literal

from actors import ScopeSettings
from actors.errors import InvalidInput
from bot.commands.common import EconomyGroup, key_of, wallet_holder
from bot.commands.render import mention, money, signed_money
from bot.model import Command, Field, Invocation, Option, OptionKind, Reply
from limits import setting_value_chars_max

_WHOLE = re.compile(r"-?[0-9]{1,20}")

_CONFIG_OPTIONS = (
    Option(
        "setting",
        OptionKind.STRING,
        "Which setting",
        required=False,
        choices=tuple(ScopeSettings.editable()),
    ),
    Option(
        "value",
        OptionKind.STRING,
        "Its new value",
        required=False,
        max_length=setting_value_chars_max,
    ),
)


class AdminCommands(EconomyGroup):
    """Settings, balances, resets and parked transfers."""

    def commands(self) -> tuple[Command, ...]:
        limits = self.economy.limits
        reason = Option(
            "reason", OptionKind.STRING, "Why (kept in history)", max_length=limits.reason_chars_max
        )
        member = Option("user", OptionKind.USER, "Which member")
        return (
            Command(
                "economy-config",
                "Show the economy settings, or change one",
                _CONFIG_OPTIONS,
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
        who = wallet_holder(inv.options["user"])
        got = await self.economy.adjust(
            inv.guild_id,
            inv.user_id,
            who.id,
            op,
            inv.options["amount"],
            key_of(inv),
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
        who = wallet_holder(inv.options["user"])
        reason: str = inv.options["reason"]
        # The balance before is read just before the reset: the reset's own result says
        # only where it left the member.
        before = await self.economy.balance(inv.guild_id, who.id)
        got = await self.economy.reset(
            inv.guild_id, inv.user_id, who.id, key_of(inv), reason=reason
        )
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
