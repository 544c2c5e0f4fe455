"""Wallet commands: ``/balance``, the ``/daily`` and ``/work`` rewards, and ``/pay``.

Each makes one call to the ``Economy`` with the interaction id as the idempotency key,
so a duplicated delivery changes nothing twice, and shows the outcome in the scope's
currency, with the figures in ``Reply.result`` for scripts.
"""

from __future__ import annotations

from typing import Literal

from actors.errors import CroupierError, OnCooldown
from bot.commands.common import EconomyGroup, key_of, wallet_holder
from bot.commands.render import mention, money, timestamp
from bot.model import Command, Field, Invocation, Option, OptionKind, Reply, UserRef


class RewardCooldown(CroupierError):
    """``OnCooldown`` with the absolute time the reward is ready added to its message."""

    code = OnCooldown.code

    def __init__(self, cause: OnCooldown) -> None:
        super().__init__(f"{cause.message} ({timestamp(cause.ready_at, 'f')})")
        self.action = cause.action
        self.ready_at = cause.ready_at


class WalletCommands(EconomyGroup):
    """``/balance``, ``/daily``, ``/work`` and ``/pay``."""

    def commands(self) -> tuple[Command, ...]:
        reason = Option(
            "reason",
            OptionKind.STRING,
            "What it is for",
            required=False,
            max_length=self.economy.limits.reason_chars_max,
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
        )

    async def _balance(self, inv: Invocation) -> Reply:
        who = wallet_holder(inv.options.get("user", UserRef(inv.user_id)))
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
            got = await self.economy.reward(inv.guild_id, inv.user_id, kind, key_of(inv))
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
            inv.guild_id,
            inv.user_id,
            to.id,
            amount,
            key_of(inv),
            reason=reason,
            to_is_bot=to.bot,
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
