"""The console transport: human mode and the JSON scripting protocol."""

from __future__ import annotations

import json
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from bot import CommandSet
from bot.console_session import InteractionIds
from limits import console_line_bytes_max
from metrics import Metrics
from tests.support import console_json
from tests.toy_commands import ToyBank

REPO = Path(__file__).resolve().parent.parent

# A toy command set answers at once; five seconds is a hang, not a slow machine.
converse = partial(console_json.converse, seconds=5)


@pytest.fixture
def bank() -> ToyBank:
    return ToyBank()


@pytest.fixture
def commands(bank: ToyBank, metrics: Metrics) -> CommandSet:
    return bank.command_set(metrics)


async def ask_json(commands: CommandSet, *requests: Any) -> list[dict[str, Any]]:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in requests]
    output = await converse(commands, "\n".join(lines) + "\n", json_mode=True)
    return [json.loads(line) for line in output.splitlines()]


async def test_human_command_with_quoted_option(commands: CommandSet, bank: ToyBank) -> None:
    """A typed slash command with a quoted option runs and prints a readable reply."""
    output = await converse(
        commands, '/pay user:43 amount:50 reason:"for the drinks"\n', json_mode=False
    )
    assert output.startswith("Croupier console.")
    assert (
        "[user 42 guild 1]> == Paid ==\nSent 50 coins to <@43>.\n  Reason: for the drinks\n"
        in output
    )
    assert (bank.balance(42), bank.balance(43)) == (50, 150)


async def test_human_as_and_guild_switch_identity(commands: CommandSet, bank: ToyBank) -> None:
    """/as changes who acts, /guild the guild, /admin the permission; the prompt shows it."""
    script = (
        "/as 43\n/guild 7\n/pay user:<@42> amount:10\n/mint amount:5\n/admin on\n/mint amount:5\n"
    )
    output = await converse(commands, script, json_mode=False)
    assert "Acting as user 43.\n[user 43 guild 1]> In guild 7.\n[user 43 guild 7]> " in output
    assert "error (not_permitted): /mint needs the Manage Server permission" in output
    assert "[user 43 guild 7 admin]> == Minted ==" in output
    assert (bank.balance(42), bank.balance(43)) == (110, 95)


async def test_human_buttons_are_pressed_by_number(commands: CommandSet) -> None:
    """Buttons show as numbers; typing one presses it, and an ephemeral refusal keeps them."""
    script = "/game\n/as 43\n2\n/as 42\n2\n1\n9\n"
    output = await converse(commands, script, json_mode=False)
    assert "[1] Hit  [2] Stand  [3] Double  [4] Split  [5] Surrender  [6] Insure\n" in output
    assert "== Not your game ==\nStart your own with /game.\n  (only you can see this)\n" in output
    assert "== Game ==\nYou chose stand.\n[1] Stand (disabled)\n" in output
    assert "error: button 1 (Stand) is disabled\n" in output
    assert "error: there is no button 9 on the last reply\n" in output


async def test_human_errors_are_explained(commands: CommandSet, bank: ToyBank) -> None:
    """Bad values, bad syntax and unknown commands each print an error and the loop goes on."""
    script = '/pay user:43 amount:abc\n/pay user:43 amount:"5\n/pay 43\n/nope\n/balance\n'
    output = await converse(commands, script, json_mode=False)
    assert "error (invalid_input): amount: 'abc' is not a whole number\n" in output
    assert "error: cannot read the options: No closing quotation\n" in output
    assert "error: expected name:value, got '43'\n" in output
    assert "error (not_found): no command 'nope'" in output
    assert output.endswith(
        "== Balance ==\n<@42> has 100 coins.\n  Coins: 100\n  (Toy bank)\n[user 42 guild 1]> "
    )
    assert len(bank.seen) == 1


async def test_human_help_lists_commands_and_options(commands: CommandSet) -> None:
    """/help shows every command with its options and their bounds."""
    output = await converse(commands, "/help\n/quit\n/balance\n", json_mode=False)
    assert "  /pay user:<user> amount:<integer> [reason:<string>]  - Pay another member\n" in output
    assert "      amount: Coins (at least 1; at most 10000)\n" in output
    assert "  /mint amount:<integer>  - Create coins (admins) (needs Manage Server)\n" in output
    assert "Balance" not in output


async def test_json_command_and_button(commands: CommandSet, bank: ToyBank) -> None:
    """JSON requests run commands and presses and get one JSON reply per line."""
    pay, game, press, refused = await ask_json(
        commands,
        {"user": 42, "guild": 1, "command": "pay", "options": {"user": 43, "amount": 50}, "id": 9},
        {"user": 42, "command": "game"},
        {"user": 42, "button": "game:42:hit"},
        {"user": 43, "button": "game:42:hit"},
    )
    assert pay == {
        "ok": True,
        "id": 9,
        "title": "Paid",
        "description": "Sent 50 coins to <@43>.",
        "fields": [{"name": "Reason", "value": "none", "inline": False}],
        "buttons": [],
        "ephemeral": False,
        "result": {"balance": 50},
        "error": None,
    }
    assert game["buttons"][0] == {
        "custom_id": "game:42:hit",
        "label": "Hit",
        "style": "primary",
        "disabled": False,
    }
    assert press["result"] == {"move": "hit"}
    assert refused["ok"] and refused["ephemeral"]
    assert len({reply["id"] for reply in (pay, game, press, refused)}) == 4


async def test_json_repeated_id_is_one_payment(commands: CommandSet, bank: ToyBank) -> None:
    """A request repeated with its id reaches the handler with the same interaction id."""
    request = {"command": "pay", "options": {"user": "43", "amount": 5}, "id": 77}
    first, second = await ask_json(commands, request, request)
    assert first == second
    assert bank.seen == [77, 77]
    assert bank.balance(43) == 105


async def test_json_errors_and_admin(commands: CommandSet) -> None:
    """Typed errors come back as error objects; "admin" grants Manage Server per request."""
    bot, refused, granted, unknown = await ask_json(
        commands,
        {"command": "pay", "options": {"user": {"id": 5, "bot": True}, "amount": 5}},
        {"command": "mint", "options": {"amount": 5}},
        {"command": "mint", "options": {"amount": 5}, "admin": True},
        {"command": "lottery"},
    )
    assert bot["error"] == {
        "code": "bot_recipient",
        "message": "user 5 is a bot and cannot hold money; pick a member",
    }
    assert not bot["ok"] and bot["ephemeral"]
    assert refused["error"]["code"] == "not_permitted"
    assert granted["ok"] and granted["result"] == {"balance": 105}
    assert unknown["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{nope", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"user": 42}', 'exactly one of "command" or "button"'),
        ('{"command": "pay", "button": "x"}', 'exactly one of "command" or "button"'),
        ('{"command": "pay", "optoins": {}}', "unknown field 'optoins'"),
        ('{"command": "pay", "options": [1]}', '"options" must be a JSON object'),
        ('{"command": "balance", "admin": "yes"}', '"admin" must be true or false'),
        ('{"button": 5}', '"button" must be a custom id of 1 to 100 characters'),
        ('{"button": "game:1:hit", "options": {}}', "unknown field 'options'"),
    ],
)
async def test_json_malformed_line_is_refused_and_loop_goes_on(
    commands: CommandSet, bank: ToyBank, line: str, message: str
) -> None:
    """A malformed request gets a bad_request reply naming the problem; the next one runs."""
    bad, good = await ask_json(commands, line, {"command": "balance"})
    assert bad == {
        "ok": False,
        "id": None,
        "error": {"code": "bad_request", "message": bad["error"]["message"]},
    }
    assert message in bad["error"]["message"]
    assert good["ok"]
    assert len(bank.seen) == 1


async def test_json_oversized_and_non_utf8_lines(commands: CommandSet) -> None:
    """Oversized and non-UTF-8 lines are refused, blank ones skipped, and the session goes on."""
    big = b'{"command": "balance", "pad": "' + b"x" * console_line_bytes_max + b'"}\n'
    text = big + b"\xff\xfe\n  \n" + b'{"command": "balance"}'
    output = await converse(commands, text, json_mode=True)
    long, binary, good = (json.loads(line) for line in output.splitlines())
    assert long["error"]["message"] == f"line longer than {console_line_bytes_max} bytes"
    assert binary["error"]["message"].startswith("line is not UTF-8")
    assert good["ok"]


async def test_json_over_real_stdio_in_a_subprocess() -> None:
    """The console serves JSON on a real process's standard input and output."""
    requests = [
        {"command": "pay", "options": {"user": 43, "amount": 30}},
        "not json",
        {"command": "balance", "options": {"user": 43}},
    ]
    stdin = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in requests)
    with trio.fail_after(30):
        done = await trio.run_process(
            [sys.executable, "-m", "tests.toy_console", "--json"],
            stdin=stdin.encode(),
            capture_stdout=True,
            capture_stderr=True,
            cwd=REPO,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()
    pay, bad, balance = (json.loads(line) for line in done.stdout.decode().splitlines())
    assert pay["result"] == {"balance": 70}
    assert bad["error"]["code"] == "bad_request"
    assert balance["result"] == {"user": 43, "balance": 130}


async def test_human_mode_over_real_pipes_in_a_subprocess() -> None:
    """Human mode over real pipes prints the prompt and replies, and exits at /quit."""
    with trio.fail_after(30):
        done = await trio.run_process(
            [sys.executable, "-m", "tests.toy_console"],
            stdin=b"/balance\n/quit\n/balance\n",
            capture_stdout=True,
            capture_stderr=True,
            cwd=REPO,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()
    output = done.stdout.decode()
    assert "[user 42 guild 1]> == Balance ==\n<@42> has 100 coins." in output
    assert output.count("Balance") == 1


def test_generated_interaction_ids_follow_the_clock() -> None:
    """Generated ids increase and start at the wall clock, so a restarted console never
    reuses an id (an idempotency key) of an earlier run."""
    before = (time.time_ns() // 1_000_000 - 1_420_070_400_000) << 22
    ids = InteractionIds()
    issued = [ids.next() for _ in range(1000)]
    assert issued == sorted(set(issued))
    assert issued[0] >= before
    assert issued[-1] < 2**63


def test_sessions_opened_in_the_same_millisecond_never_share_an_id() -> None:
    """Two id sequences of one process (two console sessions) never issue the same id,
    however close together they start."""
    first, second = InteractionIds(), InteractionIds()
    issued = [ids.next() for _ in range(500) for ids in (first, second)]
    assert len(set(issued)) == len(issued)
