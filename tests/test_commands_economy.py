"""The economy commands through the dispatcher, against a real running economy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actors import ScopeSettings
from bot import ButtonPress, ButtonRoute, Command, CommandSet, Invocation, Reply, UserRef
from bot.commands import build_command_set
from limits import RateLimit
from tests.economy_fixtures import T0, Running, running_economy
from tests.support.invoke import ok, press, refused, run

G = 1
ALICE, BOB, CAROL, ADMIN, BOT = 42, 43, 44, 7, 99
START = ScopeSettings().starting_balance
DAILY = ScopeSettings().daily_amount
# Every test here runs far more commands than a person could; the limit has its own test.
UNTHROTTLED = RateLimit(burst_commands=100_000)


@pytest.fixture
async def eco(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_economy(tmp_path) as running:
        yield running


@pytest.fixture
def commands(eco: Running) -> CommandSet:
    return build_command_set(economy=eco.economy, metrics=eco.metrics, rate_limit=UNTHROTTLED)


async def admin(commands: CommandSet, command: str, **options: Any) -> Reply:
    return await run(commands, command, by=ADMIN, admin=True, **options)


async def balance_of(commands: CommandSet, user: int) -> int:
    result = ok(await run(commands, "balance", user=UserRef(user)))
    balance: int = result["balance"]
    return balance


async def add_item(commands: CommandSet, name: str, price: int, **options: Any) -> int:
    item_id: int = ok(await admin(commands, "shop-add", name=name, price=price, **options))[
        "item_id"
    ]
    return item_id


def assert_money_sums_to_zero(eco: Running) -> None:
    report = eco.check()
    assert report.ok, report.text()


async def test_command_set_holds_every_economy_command_and_the_extras(eco: Running) -> None:
    """build_command_set serves the economy's commands and routes plus the ones passed in."""

    async def hello(inv: Invocation) -> Reply:
        return Reply(title="Hello")

    async def spin(p: ButtonPress) -> Reply:
        return Reply(title="Spun", result={"id": p.custom_id})

    commands = build_command_set(
        economy=eco.economy,
        metrics=eco.metrics,
        rate_limit=UNTHROTTLED,
        extra_commands=[Command("hello", "Say hello", (), hello)],
        extra_buttons=[ButtonRoute("slots", spin)],
    )
    assert {c.name for c in commands.commands} == {
        *("balance", "daily", "work", "pay", "leaderboard", "history", "shop", "buy", "sell"),
        *("inventory", "use", "economy-config", "money-add", "money-remove", "money-set"),
        *("reset-user", "shop-add", "shop-edit", "shop-retire", "transfer-refund", "hello"),
        *("api-token-create", "api-token-list", "api-token-revoke"),
    }
    admin_only = {c.name for c in commands.commands if c.admin_only}
    assert admin_only == {
        *("economy-config", "money-add", "money-remove", "money-set", "reset-user"),
        *("shop-add", "shop-edit", "shop-retire", "transfer-refund"),
        *("api-token-create", "api-token-list", "api-token-revoke"),
    }
    assert (await run(commands, "hello")).title == "Hello"
    assert ok(await press(commands, "slots:1:spin")) == {"id": "slots:1:spin"}


async def test_rate_limit_given_to_the_builder_applies(eco: Running) -> None:
    """The rate limit passed to build_command_set throttles a user's second command."""
    commands = build_command_set(
        economy=eco.economy,
        metrics=eco.metrics,
        rate_limit=RateLimit(burst_commands=1, refill_per_second=0.001),
    )
    ok(await run(commands, "balance"))
    assert refused(await run(commands, "balance")) == "rate_limited"


async def test_balance_speaks_the_scope_currency(commands: CommandSet) -> None:
    """/balance shows yours with cooldowns or another member's, in the scope's currency."""
    mine = await run(commands, "balance")
    assert ok(mine) == {"user": ALICE, "balance": START}
    assert mine.description == f"<@{ALICE}> has 🪙 {START} coins."
    assert [(f.name, f.value) for f in mine.fields] == [
        ("Daily", "ready now"),
        ("Work", "ready now"),
    ]
    theirs = await run(commands, "balance", user=UserRef(BOB))
    assert ok(theirs) == {"user": BOB, "balance": START}
    assert theirs.fields == ()
    ok(await admin(commands, "economy-config", setting="currency_name", value="gems"))
    ok(await admin(commands, "economy-config", setting="currency_symbol", value="💎"))
    ok(await admin(commands, "money-set", user=UserRef(ALICE), amount=1250, reason="seed"))
    assert (await run(commands, "balance")).description == f"<@{ALICE}> has 💎 1,250 gems."
    assert refused(await run(commands, "balance", user=UserRef(BOT, bot=True))) == "bot_recipient"
    assert refused(await run(commands, "balance", guild=0)) == "guild_only"


async def test_daily_pays_once_then_names_when_it_is_ready(
    commands: CommandSet, eco: Running
) -> None:
    """/daily pays once, refuses with the ready time, and a redelivery pays nothing more."""
    first = await run(commands, "daily", interaction=5_001)
    ready = T0 + 86_400
    assert ok(first) == {
        "kind": "daily",
        "amount": DAILY,
        "balance": START + DAILY,
        "next_ready_at": ready,
    }
    assert f"<t:{int(ready)}:R>" in first.description
    again = await run(commands, "daily")
    assert refused(again) == "on_cooldown"
    assert again.description == f"daily is on cooldown; try again in 24 h (<t:{int(ready)}:f>)"
    assert await run(commands, "daily", interaction=5_001) == first
    assert await balance_of(commands, ALICE) == START + DAILY
    eco.clock.advance(86_400)
    assert ok(await run(commands, "daily"))["balance"] == START + 2 * DAILY
    assert_money_sums_to_zero(eco)


async def test_work_pays_within_the_range_and_cools_down(commands: CommandSet) -> None:
    """/work pays between work_min and work_max and then has its own cooldown."""
    settings = ScopeSettings()
    result = ok(await run(commands, "work"))
    assert settings.work_min <= result["amount"] <= settings.work_max
    assert result["balance"] == START + result["amount"]
    assert result["next_ready_at"] == T0 + settings.work_cooldown_seconds
    cooling = await run(commands, "work")
    assert refused(cooling) == "on_cooldown"
    assert f"(<t:{int(T0) + settings.work_cooldown_seconds}:f>)" in cooling.description
    assert ok(await run(commands, "daily"))["amount"] == DAILY


async def test_pay_moves_money_once_per_interaction(commands: CommandSet, eco: Running) -> None:
    """/pay debits and credits once; the same interaction again answers the same."""
    pay = await run(
        commands, "pay", interaction=6_001, user=UserRef(BOB), amount=30, reason="lunch"
    )
    result = ok(pay)
    assert result == {
        "amount": 30,
        "to_user": BOB,
        "status": "credited",
        "transfer_id": f"pay:{G}:{ALICE}:6001",
        "balance": START - 30,
    }
    assert pay.title == "Payment sent"
    assert pay.description == f"You sent 🪙 30 coins to <@{BOB}>."
    assert [(f.name, f.value) for f in pay.fields] == [
        ("Your balance", f"🪙 {START - 30} coins"),
        ("Reason", "lunch"),
    ]
    repeat = await run(
        commands, "pay", interaction=6_001, user=UserRef(BOB), amount=30, reason="lunch"
    )
    assert repeat == pay
    assert await balance_of(commands, ALICE) == START - 30
    assert await balance_of(commands, BOB) == START + 30
    assert_money_sums_to_zero(eco)


async def test_pay_refusals_are_typed_and_move_nothing(commands: CommandSet, eco: Running) -> None:
    """Overdraft, self-pay, bot recipient and a bad amount are refused with their codes."""
    bob = UserRef(BOB)
    assert refused(await run(commands, "pay", user=bob, amount=START + 1)) == "insufficient_funds"
    assert refused(await run(commands, "pay", user=UserRef(ALICE), amount=1)) == "self_transfer"
    bot = await run(commands, "pay", user=UserRef(BOT, bot=True), amount=1)
    assert refused(bot) == "bot_recipient"
    assert refused(await run(commands, "pay", user=bob, amount=0)) == "invalid_input"
    assert refused(await run(commands, "pay", amount=5)) == "invalid_input"
    assert await balance_of(commands, ALICE) == START
    assert await balance_of(commands, BOB) == START
    assert_money_sums_to_zero(eco)


async def test_payment_to_a_full_wallet_comes_back(commands: CommandSet, eco: Running) -> None:
    """A recipient at the maximum balance sends the money back, and the reply says so."""
    ok(await admin(commands, "economy-config", setting="bet_max", value="1000"))
    ok(await admin(commands, "economy-config", setting="max_balance", value="1,000"))
    ok(await admin(commands, "money-set", user=UserRef(BOB), amount=1_000, reason="fill"))
    reply = await run(commands, "pay", user=UserRef(BOB), amount=10)
    result = ok(reply)
    assert (result["status"], result["balance"]) == ("returned", START)
    assert reply.title == "Payment returned"
    assert "maximum balance" in reply.description
    assert_money_sums_to_zero(eco)


async def test_leaderboard_pages_with_stateless_buttons(commands: CommandSet) -> None:
    """/leaderboard shows 25 rows a page; lb:<page> buttons page it for anyone."""
    for user in range(1, 31):
        ok(await admin(commands, "money-set", user=UserRef(user), amount=user * 10, reason="s"))
    first = await run(commands, "leaderboard")
    result = ok(first)
    assert (result["page"], result["has_next"], len(result["rows"])) == (1, True, 25)
    assert result["rows"][0] == {"rank": 1, "user": 30, "balance": 300}
    assert first.description.startswith("**1.** <@30> — 🪙 300 coins\n**2.** <@29>")
    assert [(b.custom_id, b.disabled) for b in first.buttons] == [("lb:0", True), ("lb:2", False)]
    second = await press(commands, "lb:2", by=BOB)
    result = ok(second)
    assert [row["user"] for row in result["rows"]] == [5, 4, 3, 2, 1]
    assert [(b.custom_id, b.disabled) for b in second.buttons] == [("lb:1", False), ("lb:3", True)]
    assert ok(await run(commands, "leaderboard", page=2)) == result
    assert refused(await press(commands, "lb:401")) == "invalid_input"
    assert refused(await run(commands, "leaderboard", page=401)) == "invalid_input"
    assert refused(await press(commands, "lb:two")) == "not_found"
    assert refused(await press(commands, "lb:1:2")) == "not_found"


async def test_history_pages_and_refuses_other_members_buttons(commands: CommandSet) -> None:
    """/history is newest first with paging buttons only its owner may press."""
    for i in range(30):
        ok(await run(commands, "pay", user=UserRef(BOB), amount=1, reason=f"r{i}"))
    first = await run(commands, "history")
    result = ok(first)
    assert (result["user"], result["page"], result["pages"]) == (ALICE, 1, 2)
    assert len(result["entries"]) == 25
    newest = result["entries"][0]
    assert (newest["amount"], newest["counterparty"], newest["reason"]) == (
        -1,
        f"user:{BOB}",
        "r29",
    )
    assert first.description.startswith(f"<t:{int(T0)}:d> **−🪙 1 coins** <@{BOB}> — r29\n")
    assert [(b.custom_id, b.disabled) for b in first.buttons] == [
        (f"hist:{ALICE}:0", True),
        (f"hist:{ALICE}:2", False),
    ]
    second = ok(await press(commands, f"hist:{ALICE}:2"))
    assert second["page"] == 2
    assert second["entries"][-1]["reason"] == "opening balance"
    assert "treasury — opening balance" in (await run(commands, "history", page=2)).description
    stranger = await press(commands, f"hist:{ALICE}:2", by=BOB)
    assert refused(stranger) == "not_your_button"
    assert f"<@{ALICE}>" in stranger.description
    empty = await run(commands, "history", by=CAROL)
    assert (ok(empty)["entries"], empty.description, empty.buttons) == ([], "No transfers yet.", ())


async def test_shop_lists_price_stock_and_buy_back_in_pages(commands: CommandSet) -> None:
    """/shop shows each item's price, stock, buy-back and role, ten a page."""
    empty = await run(commands, "shop")
    assert (ok(empty)["items"], empty.buttons) == ([], ())
    assert "shop is empty" in empty.description
    await add_item(
        commands, "Badge", 30, stock=2, role="<@&555>", sell_price=10, description="Shiny"
    )
    for n in range(10):
        await add_item(commands, f"Cake {n}", 5)
    first = await run(commands, "shop")
    result = ok(first)
    assert (result["page"], result["pages"], len(result["items"])) == (1, 2, 10)
    assert result["items"][0] == {
        "item_id": 1,
        "name": "Badge",
        "price": 30,
        "stock": 2,
        "sell_price": 10,
        "role_id": 555,
        "description": "Shiny",
        "retired": False,
    }
    badge = first.fields[0]
    assert badge.name == "#1 Badge"
    assert badge.value == (
        "🪙 30 coins · 2 in stock · bought back for 🪙 10 coins · grants <@&555>\nShiny"
    )
    assert first.fields[1].value == "🪙 5 coins · no stock limit · not bought back"
    assert [b.custom_id for b in first.buttons] == ["shop:0", "shop:2"]
    second = ok(await press(commands, "shop:2", by=BOB))
    assert [item["name"] for item in second["items"]] == ["Cake 9"]
    assert ok(await run(commands, "shop", page=9)) == second


async def test_buy_sell_use_and_inventory(commands: CommandSet, eco: Running) -> None:
    """Buy, sell and use move money and items once per interaction; use grants roles."""
    badge = await add_item(commands, "Badge", 30, stock=5, role="555", sell_price=10)
    buy = await run(commands, "buy", interaction=7_001, item="badge", quantity=2)
    assert ok(buy) == {
        "item_id": badge,
        "name": "Badge",
        "quantity": 2,
        "total": 60,
        "balance": START - 60,
        "owned": 2,
    }
    assert buy.description == "You bought 2 × Badge for 🪙 60 coins."
    assert await run(commands, "buy", interaction=7_001, item="badge", quantity=2) == buy
    used = await run(commands, "use", item=f"#{badge}")
    assert ok(used) == {"item_id": badge, "name": "Badge", "role_id": 555, "remaining": 1}
    assert used.grant_role_ids == (555,)
    inventory = await run(commands, "inventory")
    assert ok(inventory)["items"] == [{"item_id": badge, "name": "Badge", "count": 1}]
    assert inventory.description == f"**Badge** (#{badge}) × 1"
    sold = await run(commands, "sell", item=str(badge))
    assert ok(sold)["total"] == 10 and sold.result["owned"] == 0
    assert sold.description == "You sold 1 × Badge for 🪙 10 coins."
    assert await balance_of(commands, ALICE) == START - 50
    assert ok(await run(commands, "inventory"))["items"] == []
    assert_money_sums_to_zero(eco)


async def test_shop_refusals_are_typed(commands: CommandSet, eco: Running) -> None:
    """Each way a shop command can fail is refused with its own error code."""
    cake = await add_item(commands, "Cake", 5, stock=1)
    await add_item(commands, "Plain", 1)
    assert refused(await run(commands, "buy", item="Pie")) == "not_found"
    assert refused(await run(commands, "buy", item="#99")) == "not_found"
    assert refused(await run(commands, "buy", item="cake", quantity=2)) == "out_of_stock"
    assert refused(await run(commands, "buy", item="plain", quantity=START + 1)) == (
        "insufficient_funds"
    )
    assert refused(await run(commands, "use", item="cake")) == "not_enough_items"
    assert refused(await run(commands, "sell", item="cake")) == "not_sellable"
    assert refused(await run(commands, "buy", item="cake", quantity=0)) == "invalid_input"
    ok(await run(commands, "buy", item=str(cake)))
    assert await balance_of(commands, ALICE) == START - 5
    assert_money_sums_to_zero(eco)


async def test_inventory_pages_and_refuses_other_members_buttons(commands: CommandSet) -> None:
    """/inventory pages 25 lines with buttons only its owner may press."""
    for n in range(26):
        ok(await run(commands, "buy", item=str(await add_item(commands, f"Pin {n}", 0))))
    first = await run(commands, "inventory")
    assert (ok(first)["pages"], len(first.result["items"])) == (2, 25)
    assert [b.custom_id for b in first.buttons] == [f"inv:{ALICE}:0", f"inv:{ALICE}:2"]
    second = ok(await press(commands, f"inv:{ALICE}:2"))
    assert [item["name"] for item in second["items"]] == ["Pin 25"]
    assert refused(await press(commands, f"inv:{ALICE}:2", by=BOB)) == "not_your_button"
    assert refused(await press(commands, "inv:2")) == "not_found"


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("economy-config", {}),
        ("economy-config", {"setting": "daily_amount", "value": "1"}),
        ("money-add", {"user": UserRef(BOB), "amount": 5, "reason": "x"}),
        ("money-remove", {"user": UserRef(BOB), "amount": 5, "reason": "x"}),
        ("money-set", {"user": UserRef(BOB), "amount": 5, "reason": "x"}),
        ("reset-user", {"user": UserRef(BOB), "reason": "x"}),
        ("shop-add", {"name": "Gem", "price": 5}),
        ("shop-edit", {"item": "Cake", "price": 1}),
        ("shop-retire", {"item": "Cake"}),
        ("transfer-refund", {"id": "pay:1:42:7"}),
    ],
)
async def test_admin_commands_need_manage_server(
    commands: CommandSet, command: str, options: dict[str, Any]
) -> None:
    """Every admin command is refused to a member without Manage Server, changing nothing."""
    await add_item(commands, "Cake", 5)
    reply = await run(commands, command, **options)
    assert refused(reply) == "not_permitted"
    assert f"/{command}" in reply.description
    assert await balance_of(commands, BOB) == START
    shop = ok(await run(commands, "shop"))["items"]
    assert [(item["name"], item["price"], item["retired"]) for item in shop] == [("Cake", 5, False)]
    assert ok(await admin(commands, "economy-config"))["settings"] == ScopeSettings().public()


async def test_economy_config_shows_and_sets_settings(commands: CommandSet) -> None:
    """/economy-config shows every setting, one setting, or sets one parsed by its type."""
    every = await admin(commands, "economy-config")
    assert ok(every) == {"settings": ScopeSettings().public()}
    assert ("daily_amount", "250") in [(f.name, f.value) for f in every.fields]
    assert len(every.fields) == len(ScopeSettings.editable())
    one = await admin(commands, "economy-config", setting="work_max")
    assert ok(one) == {"settings": {"work_max": ScopeSettings().work_max}}
    changed = await admin(commands, "economy-config", setting="daily_amount", value=" 1_000 ")
    assert ok(changed) == {"setting": "daily_amount", "value": 1_000}
    assert changed.description == "**daily_amount** is now 1,000."
    text = await admin(commands, "economy-config", setting="currency_name", value="chips")
    assert ok(text) == {"setting": "currency_name", "value": "chips"}
    assert ok(await run(commands, "daily"))["amount"] == 1_000
    assert "🪙 1,000 chips" in (await run(commands, "daily", by=BOB)).description


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"setting": "daily_amount", "value": "lots"}, "daily_amount: 'lots' is not a whole"),
        ({"setting": "daily_amount", "value": "-5"}, "daily_amount: must be between"),
        ({"setting": "currency_name", "value": "x" * 33}, "currency_name: must be 1 to 32"),
        ({"setting": "colour", "value": "red"}, "setting: must be one of"),
        ({"value": "5"}, "setting: name the setting"),
    ],
)
async def test_economy_config_refuses_bad_values_naming_the_setting(
    commands: CommandSet, options: dict[str, str], message: str
) -> None:
    """A value that does not fit its setting is refused with the setting's name."""
    reply = await admin(commands, "economy-config", **options)
    assert refused(reply) == "invalid_input"
    assert reply.description.startswith(message)
    assert ok(await admin(commands, "economy-config"))["settings"] == ScopeSettings().public()


async def test_money_add_remove_set_once_per_interaction(
    commands: CommandSet, eco: Running
) -> None:
    """Money commands adjust once per interaction and refuse bots and overdrafts."""
    bob = UserRef(BOB)
    add = await admin(commands, "money-add", interaction=8_001, user=bob, amount=50, reason="prize")
    assert ok(add) == {"user": BOB, "op": "add", "delta": 50, "balance": START + 50}
    assert [(f.name, f.value) for f in add.fields] == [
        ("Change", "+🪙 50 coins"),
        ("Reason", "prize"),
    ]
    again = await admin(
        commands, "money-add", interaction=8_001, user=bob, amount=50, reason="prize"
    )
    assert again == add
    removed = ok(await admin(commands, "money-remove", user=bob, amount=20, reason="fine"))
    assert (removed["delta"], removed["balance"]) == (-20, START + 30)
    too_much = await admin(commands, "money-remove", user=bob, amount=10_000, reason="x")
    assert refused(too_much) == "insufficient_funds"
    assert ok(await admin(commands, "money-set", user=bob, amount=0, reason="zero"))["balance"] == 0
    bot = await admin(commands, "money-add", user=UserRef(BOT, bot=True), amount=5, reason="x")
    assert refused(bot) == "bot_recipient"
    assert refused(await admin(commands, "money-add", user=bob, amount=5)) == "invalid_input"
    assert await balance_of(commands, BOB) == 0
    assert_money_sums_to_zero(eco)


async def test_reset_user_restores_balance_items_and_cooldowns(
    commands: CommandSet, eco: Running
) -> None:
    """/reset-user puts a member back to the start: balance, no items, no cooldowns."""
    ok(await run(commands, "buy", item=str(await add_item(commands, "Pin", 10))))
    ok(await run(commands, "daily"))
    reset = await admin(commands, "reset-user", user=UserRef(ALICE), reason="cheating")
    assert ok(reset) == {"user": ALICE, "balance": START, "items_removed": 1}
    assert reset.description.startswith(f"<@{ALICE}> is back to 🪙 {START} coins")
    assert ok(await run(commands, "inventory"))["items"] == []
    assert ok(await run(commands, "daily"))["amount"] == DAILY
    history = ok(await run(commands, "history"))["entries"]
    assert f"reset by {ADMIN}: cheating" in [entry["reason"] for entry in history]
    assert_money_sums_to_zero(eco)


async def test_shop_add_edit_and_retire(commands: CommandSet, eco: Running) -> None:
    """Admins add, edit (-1 clears stock or buy-back) and retire items by name or id."""
    added = await admin(
        commands, "shop-add", name="Badge", price=30, stock=3, role="<@&555>", sell_price=10
    )
    assert ok(added)["item_id"] == 1 and added.title == "Item added"
    assert refused(await admin(commands, "shop-add", name="BADGE", price=1)) == "duplicate_item"
    assert refused(await admin(commands, "shop-add", name="Hat", price=1, role="admins")) == (
        "invalid_input"
    )
    edited = await admin(
        commands, "shop-edit", item="badge", price=40, stock=-1, sell_price=-1, name=" Star "
    )
    assert {k: ok(edited)[k] for k in ("name", "price", "stock", "sell_price", "role_id")} == {
        "name": "Star",
        "price": 40,
        "stock": None,
        "sell_price": None,
        "role_id": 555,
    }
    restocked = ok(await admin(commands, "shop-edit", item="#1", stock=7, sell_price=5))
    assert (restocked["stock"], restocked["sell_price"]) == (7, 5)
    described = ok(
        await admin(commands, "shop-edit", item="star", role="none", description="Shiny")
    )
    assert (described["role_id"], described["description"]) == (None, "Shiny")
    assert refused(await admin(commands, "shop-edit", item="star", role="admins")) == (
        "invalid_input"
    )
    back = ok(await admin(commands, "shop-edit", item="star", role="<@&555>", description="-"))
    assert (back["role_id"], back["description"]) == (555, "")
    nothing = await admin(commands, "shop-edit", item="star")
    assert refused(nothing) == "invalid_input"
    assert nothing.description.startswith("item: give at least one")
    assert refused(await admin(commands, "shop-edit", item="nope", price=1)) == "not_found"
    ok(await run(commands, "buy", item="star"))
    retired = await admin(commands, "shop-retire", item="1")
    assert ok(retired)["retired"] is True
    assert "no longer sold" in retired.description
    assert refused(await run(commands, "buy", item="star")) == "item_retired"
    assert ok(await run(commands, "shop"))["items"] == []
    assert (await run(commands, "inventory")).description == "**Star** (#1) × 1 · retired"
    assert ok(await run(commands, "use", item="star"))["role_id"] == 555
    assert_money_sums_to_zero(eco)


async def test_a_redelivered_shop_add_answers_as_the_first_time(
    commands: CommandSet, eco: Running
) -> None:
    """The same /shop-add interaction delivered twice adds one item and answers the same
    both times, instead of refusing its own item as a duplicate."""
    first = await admin(commands, "shop-add", name="Cup", price=2, interaction=501)
    again = await admin(commands, "shop-add", name="Cup", price=2, interaction=501)
    assert ok(again) == ok(first) and again.title == "Item added"
    assert refused(await admin(commands, "shop-add", name="Cup", price=2)) == "duplicate_item"
    assert [item.name for item in eco.economy.items(G)] == ["Cup"]
