"""A tiny in-memory bank served through a ``CommandSet``, for the transport tests.

It stands in for the domain: commands of every option kind, an admin command, a command
with buttons and a button route that refuses other users, a role grant, a handler that
crashes and one that waits until the test releases it. It is idempotent by interaction id
the way the real domain is, and records every interaction id that reached a handler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from actors.errors import BotRecipient, InsufficientFunds, SelfTransfer
from bot import (
    Button,
    ButtonPress,
    ButtonRoute,
    ButtonStyle,
    Command,
    CommandSet,
    Field,
    Invocation,
    Option,
    OptionKind,
    Reply,
    UserRef,
)
from limits import RateLimit
from metrics import Metrics

START_BALANCE = 100
VIP_ROLE_ID = 555


@dataclass
class ToyBank:
    balances: dict[int, int] = field(default_factory=dict)
    # Interaction ids whose effect has been applied (the idempotency keys).
    applied: set[int] = field(default_factory=set)
    # Every interaction id that reached a handler, duplicates included.
    seen: list[int] = field(default_factory=list)
    slow_started: trio.Event = field(default_factory=trio.Event)
    slow_release: trio.Event = field(default_factory=trio.Event)

    def balance(self, user_id: int) -> int:
        return self.balances.get(user_id, START_BALANCE)

    def command_set(
        self,
        metrics: Metrics,
        *,
        rate_limit: RateLimit | None = None,
        clock: Callable[[], float] = trio.current_time,
    ) -> CommandSet:
        commands = [
            Command(
                "balance",
                "Show a balance",
                (Option("user", OptionKind.USER, "Whose balance", required=False),),
                self._balance,
            ),
            Command(
                "pay",
                "Pay another member",
                (
                    Option("user", OptionKind.USER, "Who gets paid"),
                    Option("amount", OptionKind.INTEGER, "Coins", min_value=1, max_value=10_000),
                    Option("reason", OptionKind.STRING, "Why", required=False, max_length=20),
                ),
                self._pay,
            ),
            Command(
                "bet",
                "Bet on a colour",
                (
                    Option("colour", OptionKind.STRING, "Red or black", choices=("red", "black")),
                    Option("double", OptionKind.BOOLEAN, "Double the stake", required=False),
                    Option(
                        "stake", OptionKind.INTEGER, "Coins", required=False, choices=("5", "10")
                    ),
                ),
                self._bet,
            ),
            Command(
                "mint",
                "Create coins (admins)",
                (Option("amount", OptionKind.INTEGER, "Coins", min_value=1),),
                self._mint,
                admin_only=True,
            ),
            Command("game", "Start a game with buttons", (), self._game),
            Command("vip", "Buy the VIP role", (), self._vip),
            Command("boom", "Crash on purpose", (), self._boom),
            Command(
                "slow",
                "Wait until the test releases it",
                (Option("secret", OptionKind.BOOLEAN, "Answer ephemerally", required=False),),
                self._slow,
            ),
        ]
        return CommandSet(
            commands,
            [ButtonRoute("game", self._press)],
            metrics=metrics,
            rate_limit=rate_limit,
            clock=clock,
        )

    async def _balance(self, inv: Invocation) -> Reply:
        self.seen.append(inv.interaction_id)
        who = inv.options.get("user", UserRef(inv.user_id))
        coins = self.balance(who.id)
        return Reply(
            title="Balance",
            description=f"<@{who.id}> has {coins} coins.",
            fields=(Field("Coins", str(coins)),),
            footer="Toy bank",
            result={"user": who.id, "balance": coins},
        )

    async def _pay(self, inv: Invocation) -> Reply:
        self.seen.append(inv.interaction_id)
        target: UserRef = inv.options["user"]
        amount: int = inv.options["amount"]
        if target.bot:
            raise BotRecipient(target.id)
        if target.id == inv.user_id:
            raise SelfTransfer()
        if inv.interaction_id not in self.applied:
            if self.balance(inv.user_id) < amount:
                raise InsufficientFunds(self.balance(inv.user_id), amount)
            self.balances[inv.user_id] = self.balance(inv.user_id) - amount
            self.balances[target.id] = self.balance(target.id) + amount
            self.applied.add(inv.interaction_id)
        return Reply(
            title="Paid",
            description=f"Sent {amount} coins to <@{target.id}>.",
            fields=(Field("Reason", inv.options.get("reason", "none"), inline=False),),
            result={"balance": self.balance(inv.user_id)},
        )

    async def _bet(self, inv: Invocation) -> Reply:
        self.seen.append(inv.interaction_id)
        return Reply(title="Bet placed", result=dict(inv.options))

    async def _mint(self, inv: Invocation) -> Reply:
        self.seen.append(inv.interaction_id)
        self.balances[inv.user_id] = self.balance(inv.user_id) + inv.options["amount"]
        return Reply(title="Minted", result={"balance": self.balance(inv.user_id)})

    async def _game(self, inv: Invocation) -> Reply:
        self.seen.append(inv.interaction_id)
        owner = inv.user_id
        buttons = tuple(
            Button(f"game:{owner}:{move}", move.title(), ButtonStyle.PRIMARY)
            for move in ("hit", "stand", "double", "split", "surrender", "insure")
        )
        return Reply(title="Game", description="Your move.", buttons=buttons, result={"moves": 0})

    async def _press(self, press: ButtonPress) -> Reply:
        self.seen.append(press.interaction_id)
        _, owner, move = press.custom_id.split(":")
        if move == "slow":
            self.slow_started.set()
            await self.slow_release.wait()
        if int(owner) != press.user_id:
            return Reply(
                title="Not your game", description="Start your own with /game.", ephemeral=True
            )
        return Reply(
            title="Game",
            description=f"You chose {move}.",
            buttons=(Button(press.custom_id, move.title(), disabled=True),),
            result={"move": move},
        )

    async def _vip(self, inv: Invocation) -> Reply:
        self.seen.append(inv.interaction_id)
        return Reply(title="VIP", description="Enjoy the lounge.", grant_role_ids=(VIP_ROLE_ID,))

    async def _boom(self, inv: Invocation) -> Reply:
        self.seen.append(inv.interaction_id)
        raise RuntimeError("the toy bank exploded")

    async def _slow(self, inv: Invocation) -> Reply:
        self.seen.append(inv.interaction_id)
        self.slow_started.set()
        await self.slow_release.wait()
        return Reply(
            title="Done", description="Finally.", ephemeral=inv.options.get("secret", False)
        )
