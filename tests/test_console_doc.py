"""bot/CONSOLE.md describes the real server: its examples run against the real command
set and give the replies it shows, and the flags and configuration keys it names exist."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bot import CommandSet
from bot.cli import build_parser
from bot.commands import build_command_set
from bot.commands.games import games_commands
from bot.config import Config
from limits import RateLimit
from tests.economy_fixtures import running_games
from tests.support.console_json import converse

DOC = Path(__file__).resolve().parents[1] / "bot" / "CONSOLE.md"
_BLOCK = re.compile(r"^```(console|jsonl)\n(.*?)^```", re.S | re.M)
_PROMPT = re.compile(r"^(\[user \d+ guild \d+(?: admin)?\]> )(.*)$", re.M)


def blocks(kind: str) -> list[str]:
    found = [body for language, body in _BLOCK.findall(DOC.read_text()) if language == kind]
    assert found, f"CONSOLE.md has no {kind} example"
    return found


def command_set(casino: Any) -> CommandSet:
    extra, buttons = games_commands(casino.games, casino.economy)
    return build_command_set(
        economy=casino.economy,
        metrics=casino.metrics,
        rate_limit=RateLimit(burst_commands=1_000),
        extra_commands=extra,
        extra_buttons=buttons,
    )


def contains(actual: Any, shown: Any) -> bool:
    """True when every field the doc shows has the value it shows (lists whole)."""
    if isinstance(shown, dict):
        return isinstance(actual, dict) and all(
            key in actual and contains(actual[key], value) for key, value in shown.items()
        )
    if isinstance(shown, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(shown)
            and all(contains(a, s) for a, s in zip(actual, shown, strict=True))
        )
    return bool(actual == shown)


async def test_every_human_mode_example_prints_what_it_shows(tmp_path: Path) -> None:
    """Each typed session in CONSOLE.md, run on a fresh store, prints exactly the
    replies written under its prompts."""
    for number, body in enumerate(blocks("console")):
        typed = "".join(line + "\n" for _, line in _PROMPT.findall(body))
        expected = _PROMPT.sub(r"\1", body)
        async with running_games(tmp_path / f"human{number}") as casino:
            output = await converse(command_set(casino), typed, json_mode=False, seconds=30)
        banner, _, transcript = output.partition("\n")
        assert banner.startswith("Croupier console.")
        # The doc writes a newline after each typed line; the console echoes none.
        assert transcript == expected.replace("> \n", "> "), transcript


async def test_every_json_example_answers_what_it_shows(tmp_path: Path) -> None:
    """The JSON examples, run in order on one fresh store, answer with the fields they
    show."""
    async with running_games(tmp_path) as casino:
        commands = command_set(casino)
        for body in blocks("jsonl"):
            lines = body.splitlines()
            requests = [line[2:] for line in lines if line.startswith("> ")]
            shown = [json.loads(line[2:]) for line in lines if line.startswith("< ")]
            assert len(requests) == len(shown), body
            for request in requests:
                json.loads(request)
            output = await converse(
                commands, "".join(r + "\n" for r in requests), json_mode=True, seconds=30
            )
            replies = [json.loads(line) for line in output.splitlines()]
            assert len(replies) == len(requests)
            for request, reply, want in zip(requests, replies, shown, strict=True):
                assert contains(reply, want), (request, reply, want)


def test_the_flags_and_keys_it_names_exist() -> None:
    """Every --flag and console configuration key CONSOLE.md names is real."""
    text = DOC.read_text()
    parser = build_parser()
    console = parser._subparsers._group_actions[0].choices["console"]  # type: ignore[union-attr]
    flags = {flag for action in console._actions for flag in action.option_strings}
    for flag in set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", text)):
        assert flag in flags, flag
    keys = (
        {field for field in Config.model_fields}
        if hasattr(Config, "model_fields")
        else set(Config.__dataclass_fields__)
    )
    for key in set(re.findall(r"`(console_[a-z_]+)`", text)):
        assert key in keys, key
    for env in set(re.findall(r"`CROUPIER_([A-Z_]+)`", text)):
        assert env.lower() in keys, env
