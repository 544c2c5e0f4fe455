"""The casino commands over the console's JSON line protocol, against running games."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import CommandSet
from bot.commands import build_command_set
from bot.commands.games import games_commands
from limits import RateLimit
from tests.economy_fixtures import RunningGames, running_games
from tests.support.console_json import ask_json

PLAYER = 42


@pytest.fixture
async def casino(tmp_path: Path) -> AsyncIterator[RunningGames]:
    async with running_games(tmp_path) as running:
        await running.economy.update_settings(1, {"game_cooldown_seconds": 0})
        yield running


@pytest.fixture
def commands(casino: RunningGames) -> CommandSet:
    extra, buttons = games_commands(casino.games, casino.economy)
    return build_command_set(
        economy=casino.economy,
        metrics=casino.metrics,
        rate_limit=RateLimit(burst_commands=10_000),
        extra_commands=extra,
        extra_buttons=buttons,
    )


async def test_every_casino_command_answers_in_json(commands: CommandSet) -> None:
    """Each game command answers with machine-readable results; bad bets name their code."""
    replies = await ask_json(
        commands,
        {"command": "coinflip", "options": {"stake": 5, "choice": "heads"}},
        {"command": "dice", "options": {"stake": 5, "bet": "number", "number": 6}},
        {"command": "slots", "options": {"stake": 5}},
        {"command": "roulette", "options": {"stake": 5, "bet": "dozen", "number": 3}},
        {"command": "blackjack-rules"},
        {"command": "slots-table"},
        {"command": "roulette", "options": {"stake": 5, "bet": "straight", "number": 37}},
        {"command": "coinflip", "options": {"stake": 10**9, "choice": "tails"}},
    )
    for reply in replies[:4]:
        assert reply["ok"] and reply["result"]["phase"] == "settled"
        assert reply["result"]["server_seed"] == "" and reply["result"]["seed_hash"]
    assert [reply["result"]["nonce"] for reply in replies[:4]] == [0, 1, 2, 3]
    assert replies[4]["ok"] and replies[5]["ok"]
    assert replies[6]["error"]["code"] == "invalid_input"
    assert replies[7]["error"]["code"] in ("invalid_input", "insufficient_funds")
    game_id = replies[0]["result"]["game_id"]
    [secret, rotated, verified] = await ask_json(
        commands,
        {"command": "verify", "options": {"game": game_id}},
        {"command": "fairness", "options": {"client_seed": "mine"}},
        {"command": "verify", "options": {"game": game_id}},
    )
    assert secret["error"]["code"] == "seed_not_revealed"
    assert verified["ok"] and verified["result"]["matches"] is True
    first = {**replies[0]["result"], "server_seed": rotated["result"]["revealed"]["server_seed"]}
    [again] = await ask_json(
        commands,
        {
            "command": "verify-seeds",
            "options": {
                "kind": "coinflip",
                "server_seed": first["server_seed"],
                "client_seed": first["client_seed"],
                "nonce": str(first["nonce"]),
                "stake": 5,
                "choice": "heads",
            },
        },
    )
    assert again["ok"], again


async def test_blackjack_by_buttons_in_json(commands: CommandSet) -> None:
    """A blackjack round is played by sending back a reply's button custom ids."""
    for _ in range(20):
        [start] = await ask_json(commands, {"command": "blackjack", "options": {"stake": 5}})
        assert start["ok"], start
        if start["result"]["phase"] == "live":
            break
    else:
        raise AssertionError("twenty deals in a row ended at once")
    reply = start
    while reply["result"]["phase"] == "live":
        stand = next(
            b["custom_id"]
            for b in reply["buttons"]
            if b["custom_id"].endswith(":stand") and not b["disabled"]
        )
        [reply] = await ask_json(commands, {"button": stand})
        assert reply["ok"], reply
    assert reply["result"]["outcome"] in ("win", "loss", "push")
    [stale] = await ask_json(commands, {"button": stand})
    assert stale["error"]["code"] == "game_over"
