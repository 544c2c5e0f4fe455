"""The economy commands over the console's JSON line protocol, against a running economy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actors import ScopeSettings
from bot import CommandSet
from bot.commands import build_command_set
from limits import RateLimit
from tests.economy_fixtures import T0, Running, running_economy
from tests.support.console_json import ask_json

ALICE, BOB = 42, 43
START = ScopeSettings().starting_balance
DAILY = ScopeSettings().daily_amount


@pytest.fixture
async def eco(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_economy(tmp_path) as running:
        yield running


@pytest.fixture
def commands(eco: Running) -> CommandSet:
    return build_command_set(
        economy=eco.economy,
        metrics=eco.metrics,
        rate_limit=RateLimit(burst_commands=10_000),
    )


def results(replies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The results of replies that must all have succeeded."""
    for reply in replies:
        assert reply["ok"] and reply["error"] is None, reply
    return [reply["result"] for reply in replies]


async def test_member_commands_answer_json(commands: CommandSet) -> None:
    """Every member command answers one JSON reply with its figures in "result"."""
    admin = {"admin": True, "user": 7}
    replies = await ask_json(
        commands,
        {**admin, "command": "shop-add", "options": {"name": "Badge", "price": 30}},
        {**admin, "command": "shop-edit", "options": {"item": "badge", "sell_price": 10}},
        {"command": "balance"},
        {"command": "daily"},
        {"command": "work"},
        {"command": "pay", "options": {"user": BOB, "amount": 30, "reason": "lunch"}, "id": 501},
        {"command": "shop"},
        {"command": "buy", "options": {"item": "Badge", "quantity": 2}},
        {"command": "sell", "options": {"item": "#1"}},
        {"command": "use", "options": {"item": "1"}},
        {"command": "inventory"},
        {"command": "history"},
        {"command": "leaderboard"},
    )
    _, _, balance, daily, work, pay, shop, buy, sell, use, inventory, history, board = results(
        replies
    )
    assert balance == {"user": ALICE, "balance": START}
    assert replies[2]["description"] == f"<@{ALICE}> has 🪙 {START} coins."
    assert daily == {
        "kind": "daily",
        "amount": DAILY,
        "balance": START + DAILY,
        "next_ready_at": T0 + 86_400,
    }
    earned = work["amount"]
    assert work["balance"] == START + DAILY + earned
    assert pay == {
        "amount": 30,
        "to_user": BOB,
        "status": "credited",
        "transfer_id": f"pay:1:{ALICE}:501",
        "balance": START + DAILY + earned - 30,
    }
    assert [(i["name"], i["price"], i["sell_price"]) for i in shop["items"]] == [("Badge", 30, 10)]
    assert (buy["total"], buy["owned"]) == (60, 2)
    assert (sell["total"], sell["owned"]) == (10, 1)
    assert use == {"item_id": 1, "name": "Badge", "role_id": None, "remaining": 0}
    assert inventory["items"] == []
    assert [e["reason"] for e in history["entries"]][:3] == [
        "sold 1 x Badge",
        "bought 2 x Badge",
        "lunch",
    ]
    assert board["rows"] == [
        {"rank": 1, "user": ALICE, "balance": START + DAILY + earned - 80},
        {"rank": 2, "user": BOB, "balance": START + 30},
    ]


async def test_admin_commands_answer_json(commands: CommandSet) -> None:
    """Every admin command answers JSON when the request carries "admin": true."""
    replies = await ask_json(
        commands,
        {"admin": True, "command": "economy-config"},
        {
            "admin": True,
            "command": "economy-config",
            "options": {"setting": "currency_name", "value": "chips"},
        },
        {
            "admin": True,
            "command": "money-add",
            "options": {"user": BOB, "amount": 50, "reason": "prize"},
        },
        {
            "admin": True,
            "command": "money-remove",
            "options": {"user": BOB, "amount": 20, "reason": "fine"},
        },
        {
            "admin": True,
            "command": "money-set",
            "options": {"user": BOB, "amount": 500, "reason": "fix"},
        },
        {
            "admin": True,
            "command": "shop-add",
            "options": {"name": "Hat", "price": 5, "stock": 1, "role": "<@&555>"},
        },
        {"admin": True, "command": "shop-edit", "options": {"item": "hat", "price": 7}},
        {"admin": True, "command": "shop-retire", "options": {"item": "Hat"}},
        {"admin": True, "command": "reset-user", "options": {"user": BOB, "reason": "fresh start"}},
        {"command": "balance", "options": {"user": BOB}},
    )
    config, currency, add, remove, set_, item, edit, retire, reset, balance = results(replies)
    assert config == {"settings": ScopeSettings().public()}
    assert currency == {"setting": "currency_name", "value": "chips"}
    assert add == {"user": BOB, "op": "add", "delta": 50, "balance": START + 50}
    assert remove == {"user": BOB, "op": "remove", "delta": -20, "balance": START + 30}
    assert set_ == {"user": BOB, "op": "set", "delta": 500 - START - 30, "balance": 500}
    assert replies[4]["description"] == f"<@{BOB}> now has 🪙 500 chips."
    assert (item["name"], item["stock"], item["role_id"]) == ("Hat", 1, 555)
    assert edit["price"] == 7
    assert retire["retired"] is True
    assert reset == {"user": BOB, "balance": START, "items_removed": 0}
    assert balance == {"user": BOB, "balance": START}


async def test_json_errors_carry_their_codes(commands: CommandSet) -> None:
    """Refusals come back as ephemeral JSON errors with stable codes and no result."""
    replies = await ask_json(
        commands,
        {"command": "pay", "options": {"user": BOB, "amount": START + 1}},
        {"command": "pay", "options": {"user": ALICE, "amount": 1}},
        {"command": "pay", "options": {"user": {"id": 99, "bot": True}, "amount": 1}},
        {"command": "daily"},
        {"command": "daily"},
        {"command": "money-add", "options": {"user": BOB, "amount": 1, "reason": "x"}},
        {
            "admin": True,
            "command": "economy-config",
            "options": {"setting": "work_min", "value": "many"},
        },
        {"command": "buy", "options": {"item": "Unicorn"}},
        {"command": "balance", "guild": 0},
    )
    codes = [reply["error"]["code"] if reply["error"] else None for reply in replies]
    assert codes == [
        "insufficient_funds",
        "self_transfer",
        "bot_recipient",
        None,
        "on_cooldown",
        "not_permitted",
        "invalid_input",
        "not_found",
        "guild_only",
    ]
    for reply in replies:
        if reply["error"]:
            assert not reply["ok"] and reply["ephemeral"] and reply["result"] == {}
    assert f"<t:{int(T0) + 86_400}:f>" in replies[4]["error"]["message"]
    assert replies[6]["error"]["message"] == "work_min: 'many' is not a whole number"


async def test_json_buttons_page_and_repeated_ids_change_nothing_twice(
    commands: CommandSet,
) -> None:
    """Buttons are pressed by custom id; a request repeated with its id pays once."""
    pay = {"command": "pay", "options": {"user": BOB, "amount": 1}, "id": 900}
    seeds = [
        {"admin": True, "command": "money-set", "options": {"user": u, "amount": u, "reason": "s"}}
        for u in range(1, 27)
    ]
    items = [
        {"admin": True, "command": "shop-add", "options": {"name": f"Pin {n}", "price": 0}}
        for n in range(11)
    ]
    replies = await ask_json(
        commands,
        *seeds,
        *items,
        pay,
        pay,
        {"command": "history"},
        {"button": f"hist:{ALICE}:1"},
        {"button": f"hist:{ALICE}:1", "user": BOB},
        {"command": "leaderboard"},
        {"button": "lb:2", "user": BOB},
        {"button": "shop:2"},
        {"command": "buy", "options": {"item": "Pin 0"}},
        {"button": f"inv:{ALICE}:1"},
        {"button": "nope:1"},
    )
    first, again, history, own, stranger, board, board2, shop2, _, inv, unknown = replies[
        len(seeds) + len(items) :
    ]
    assert first == {**again, "id": 900}
    assert first["result"]["balance"] == START - 1
    assert len(results([history])[0]["entries"]) == 2
    assert own["result"] == history["result"]
    assert stranger["error"]["code"] == "not_your_button"
    assert [b["custom_id"] for b in board["buttons"]] == ["lb:0", "lb:2"]
    # Bob (101) and Alice (99) lead page 1, then users 26 down to 4 fill it.
    assert [r["user"] for r in board2["result"]["rows"]] == [3, 2, 1]
    assert [i["name"] for i in shop2["result"]["items"]] == ["Pin 10"]
    assert inv["result"]["items"] == [{"item_id": 1, "name": "Pin 0", "count": 1}]
    assert unknown["error"]["code"] == "not_found"
