"""The console's JSON boundary under adversarial input, against a real casino on a real
store: every line gets exactly one reply with a known code, nothing ends the session, and
the store stays consistent."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors import errors
from bot import CommandSet
from bot.commands import build_command_set
from bot.commands.games import games_commands
from limits import RateLimit, json_depth_max
from metrics import Metrics
from tests.conftest import sample
from tests.economy_fixtures import RunningGames, running_games
from tests.support import console_json

PLAYER, OTHER = 42, 43


def _codes(cls: type[errors.CroupierError]) -> set[str]:
    return {cls.code}.union(*(_codes(sub) for sub in cls.__subclasses__()))


# Every code a reply may carry: the typed errors (the command modules imported above
# define theirs), plus the console's own.
KNOWN_CODES = _codes(errors.CroupierError) | {"bad_request", "internal"}
FUZZ_EXAMPLES = int(os.environ.get("CROUPIER_FUZZ_EXAMPLES", "60"))


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
        rate_limit=RateLimit(burst_commands=1_000_000),
        extra_commands=extra,
        extra_buttons=buttons,
    )


async def converse(commands: CommandSet, data: bytes) -> list[dict[str, Any]]:
    """Feed raw bytes to a JSON console session; return its replies."""
    output = await console_json.converse(commands, data, json_mode=True, user=PLAYER, seconds=60)
    # Replies end at "\n" only: the protocol's line end, whatever else a reply holds.
    return [json.loads(line) for line in output.split("\n") if line]


def lines(*requests: Any) -> bytes:
    return b"".join(
        (r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in requests
    )


def code(reply: dict[str, Any]) -> str | None:
    return reply["error"]["code"] if reply["error"] else None


async def balance(commands: CommandSet, user: int) -> int:
    (reply,) = await converse(commands, lines({"command": "balance", "options": {"user": user}}))
    assert reply["ok"], reply
    result: int = reply["result"]["balance"]
    return result


@pytest.mark.parametrize("to", [-5, 0, 2**64, "-5", "²", "٣", "43.0", 4.3e1, True, None])
async def test_pay_to_an_invalid_account_moves_nothing(
    commands: CommandSet, casino: RunningGames, to: object
) -> None:
    """A payment to anything but a real user id is refused naming the option, before any
    debit: the sender keeps every coin and the store stays clean."""
    before = await balance(commands, PLAYER)
    (reply,) = await converse(
        commands, lines({"command": "pay", "options": {"user": to, "amount": 1}})
    )
    assert code(reply) == "invalid_input"
    assert reply["error"]["message"].startswith("user: ")
    assert await balance(commands, PLAYER) == before
    assert casino.check().ok


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("user", "²"),
        ("user", -1),
        ("user", 2**64),
        ("user", 1.5),
        ("guild", "abc"),
        ("guild", 2**70),
        ("channel", -3),
        ("id", 0),
        ("id", "١٢٣"),
        ("id", False),
    ],
)
async def test_bad_request_ids_are_refused_naming_the_field(
    commands: CommandSet, field: str, value: object
) -> None:
    """Request-level ids must be Discord snowflakes; anything else is refused with
    invalid_input naming the field, and the session goes on."""
    bad, good = await converse(
        commands, lines({"command": "balance", field: value}, {"command": "balance"})
    )
    assert code(bad) == "invalid_input"
    assert bad["error"]["message"].startswith(f"{field}: ")
    assert good["ok"]


async def test_snowflake_ids_as_digit_strings_are_accepted(commands: CommandSet) -> None:
    """An id may be an int or a string of ASCII digits, as Discord sends them."""
    (reply,) = await converse(commands, lines({"command": "balance", "user": "43", "id": "12345"}))
    assert reply["ok"] and reply["id"] == 12345
    assert reply["result"]["user"] == 43


@pytest.mark.parametrize(
    "amount",
    ["5" * 5000, "-" + "9" * 30, "1e400", "NaN", "Infinity", "1.5", "true", '"10"', "2e1"],
)
async def test_amounts_beyond_any_bound_are_refused_naming_the_option(
    commands: CommandSet, amount: str
) -> None:
    """Huge integers, floats, NaN, booleans and text are refused naming the option,
    without converting thousands of digits."""
    line = ('{"command": "pay", "options": {"user": 43, "amount": ' + amount + "}}").encode()
    (reply,) = await converse(commands, lines(line))
    assert code(reply) == "invalid_input", reply
    assert reply["error"]["message"].startswith("amount: ")
    assert len(reply["error"]["message"]) < 200


async def test_deep_nesting_is_refused_before_parsing(commands: CommandSet) -> None:
    """A line nested thousands of levels deep is refused, not a RecursionError."""
    deep = b'{"command": "balance", "options": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    shallow = b'{"command": "balance", "options": {"user": {"id": [[[[]]]]}}}'
    brackets_in_text = lines({"command": "balance", "options": {"x": "[" * 100}})
    replies = await converse(commands, deep + b"\n" + shallow + b"\n" + brackets_in_text)
    assert code(replies[0]) == "bad_request"
    assert f"deeper than {json_depth_max}" in replies[0]["error"]["message"]
    assert code(replies[1]) == "invalid_input"
    assert code(replies[2]) == "invalid_input"
    assert "no such option" in replies[2]["error"]["message"]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("a\x00b", "control character"),
        ("line\nbreak", "control character"),
        ("zero\u200bwidth", "invisible character"),
        ("right\u202eleft", "invisible character"),
        ("\ud800", "lone surrogate"),
        ("para\u2029graph", "line break"),
        ("line\u2028separator", "line break"),
    ],
)
async def test_text_with_hidden_characters_is_refused_naming_the_option(
    commands: CommandSet, text: str, why: str
) -> None:
    """Control, zero-width, bidirectional and lone surrogate characters are refused in
    stored text, naming the option."""
    request = json.dumps(
        {"command": "pay", "options": {"user": OTHER, "amount": 1, "reason": text}}
    )
    (reply,) = await converse(commands, lines(request.encode()))
    assert code(reply) == "invalid_input"
    assert reply["error"]["message"].startswith("reason: ") and why in reply["error"]["message"]


async def test_text_is_normalised_and_counted_after_normalisation(
    commands: CommandSet, casino: RunningGames
) -> None:
    """Decomposed text is stored NFC-normalised; its length counts after normalisation."""
    decomposed = "e\u0301" * casino.economy.limits.item_name_chars_max
    replies = await converse(
        commands,
        lines({"admin": True, "command": "shop-add", "options": {"name": decomposed, "price": 1}}),
    )
    assert replies[0]["ok"], replies[0]
    assert replies[0]["result"]["name"] == "\u00e9" * casino.economy.limits.item_name_chars_max


async def test_human_mode_survives_unicode_digits(commands: CommandSet) -> None:
    """Typed lines with non-ASCII digits get an answer, not a crash."""
    typed = "/as ²\n/guild ٣\n²\n/pay user:² amount:1\n/pay user:43 amount:" + "9" * 5000
    text = await console_json.converse(
        commands, typed + "\n/balance\n", json_mode=False, user=PLAYER, seconds=30
    )
    assert text.count("error (invalid_input): user:") == 2
    assert "error (invalid_input): guild:" in text
    assert "error (invalid_input): amount:" in text
    assert "== Balance ==" in text


async def test_an_unexpected_failure_is_answered_internal_and_counted(
    commands: CommandSet, casino: RunningGames, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in the transport around a command is logged, counted and answered
    "internal"; the next line is served."""
    import bot.console_json

    def broken(*args: object) -> dict[str, Any]:
        raise RuntimeError("boom")

    monkeypatch.setattr(bot.console_json, "_json_invocation", broken)
    replies = await converse(commands, lines({"command": "balance"}, {"button": "lb:1"}))
    assert code(replies[0]) == "internal"
    assert replies[1]["ok"]
    metrics: Metrics = casino.metrics
    assert sample(metrics, "croupier_commands_total", command="transport", outcome="failed") == 1


# --- fuzzing -------------------------------------------------------------------------

_ids = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 42, 43, 2**64 - 1, 2**64, -1]),
    st.text(max_size=25),
    st.sampled_from(["42", "²", "٤٢", "0042", " 42", "4" * 21]),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
)
_scalars = st.one_of(
    _ids,
    st.text(alphabet=st.characters(codec="utf-8"), max_size=80),
    st.sampled_from(["\u200b", "\x00", "a\u0301", "@everyone", "<@&1>", "#1", "-1", "none"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
_command_names = st.sampled_from(
    [
        "balance",
        "daily",
        "work",
        "pay",
        "leaderboard",
        "history",
        "shop",
        "buy",
        "sell",
        "inventory",
        "use",
        "economy-config",
        "money-add",
        "money-remove",
        "money-set",
        "reset-user",
        "shop-add",
        "shop-edit",
        "shop-retire",
        "coinflip",
        "dice",
        "slots",
        "roulette",
        "blackjack",
        "blackjack-rules",
        "slots-table",
        "fair-check",
        "verify",
        "nope",
    ]
)
_option_names = st.sampled_from(
    [
        "user",
        "amount",
        "reason",
        "page",
        "item",
        "quantity",
        "setting",
        "value",
        "name",
        "price",
        "stock",
        "role",
        "sell_price",
        "description",
        "stake",
        "bet",
        "side",
        "number",
        "seed",
        "game",
        "client_seed",
        "server_seed",
        "choice",
        "kind",
        "nonce",
        "actions",
    ]
)
# "@game0" and "@game1" stand for the buttons of the two games each example opens (one
# of the acting user's, one of another member's); presses of them come from any user and
# guild.
_GAME_BUTTONS = ("@game0", "@game1")
_buttons = st.one_of(
    st.sampled_from(_GAME_BUTTONS),
    st.text(max_size=40),
    st.builds(
        lambda prefix, parts: ":".join([prefix, *parts]),
        st.sampled_from(["bj", "lb", "hist", "shop", "inv", "x"]),
        st.lists(st.one_of(_ids.map(str), st.sampled_from(["hit", "stand", "0"])), max_size=4),
    ),
)
_request_fields = st.fixed_dictionaries(
    {},
    optional={
        "user": st.one_of(_ids, st.sampled_from([PLAYER, OTHER])),
        "guild": st.one_of(_ids, st.just(1)),
        "channel": _ids,
        "admin": st.one_of(st.booleans(), _scalars),
        "id": st.one_of(_ids, st.integers(min_value=1, max_value=50)),
    },
)
_commands = st.builds(
    lambda fields, name, options: {**fields, "command": name, "options": options},
    _request_fields,
    _command_names,
    st.dictionaries(_option_names, _values, max_size=4),
)
_presses = st.builds(lambda fields, b: {**fields, "button": b}, _request_fields, _buttons)
_raw_lines = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.integers(min_value=1, max_value=6000).map(lambda n: b"[" * n),
    st.integers(min_value=300, max_value=6000).map(
        lambda n: b'{"command": "pay", "options": {"user": 43, "amount": ' + b"7" * n + b"}}"
    ),
)
_lines = st.lists(
    st.one_of(
        _commands.map(lambda r: json.dumps(r, allow_nan=True).encode()),
        _presses.map(lambda r: json.dumps(r, allow_nan=True).encode()),
        _raw_lines.map(lambda b: b.replace(b"\n", b" ")),
    ),
    min_size=1,
    max_size=12,
)


@asynccontextmanager
async def fresh_casino() -> AsyncIterator[tuple[RunningGames, CommandSet]]:
    """A casino on its own temporary store, for one hypothesis example."""
    with tempfile.TemporaryDirectory() as data:
        async with running_games(Path(data)) as running:
            await running.economy.update_settings(1, {"game_cooldown_seconds": 0})
            extra, buttons = games_commands(running.games, running.economy)
            commands = build_command_set(
                economy=running.economy,
                metrics=running.metrics,
                rate_limit=RateLimit(burst_commands=1_000_000),
                extra_commands=extra,
                extra_buttons=buttons,
            )
            yield running, commands


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=_lines)
async def test_fuzzed_lines_each_get_one_known_answer(batch: list[bytes]) -> None:
    """Random and adversarial lines (ids, numbers, text, nesting, unicode, buttons of
    other games and guilds) each get exactly one reply with a known code, the session
    survives, and the integrity check stays clean, live games included."""
    opening = lines(
        {"command": "blackjack", "options": {"stake": 5}},
        {"user": OTHER, "command": "blackjack", "options": {"stake": 7}},
    )
    # A line the console takes as blank gets no reply: blank as text (str.strip also
    # drops the separators \x1c to \x1f that bytes.strip keeps); undecodable bytes are a
    # bad request, which is answered.
    sent = [line for line in batch if line.decode(errors="replace").strip()]
    async with fresh_casino() as (casino, commands):
        games = await converse(commands, opening)
        assert games[0]["ok"] and games[1]["ok"], games
        for placeholder, game in zip(_GAME_BUTTONS, games, strict=True):
            button = game["buttons"][-1]["custom_id"] if game["buttons"] else "bj:none:0:hit"
            sent = [line.replace(placeholder.encode(), button.encode()) for line in sent]
        replies = games + await converse(commands, b"\n".join(sent) + b"\n")
        assert len(replies) == 2 + len(sent)
        for reply in replies:
            assert set(reply) >= {"ok", "error"}
            assert reply["ok"] == (reply["error"] is None)
            if reply["error"]:
                assert reply["error"]["code"] in KNOWN_CODES, reply
                assert reply["error"]["code"] != "internal", reply
        failed = sample(
            casino.metrics, "croupier_commands_total", command="transport", outcome="failed"
        )
        assert failed == 0
        report = casino.check()
        assert report.ok, report.text()


async def test_a_reply_is_one_line_for_every_line_reader(
    commands: CommandSet, casino: RunningGames
) -> None:
    """Stored text holding characters that str.splitlines takes as line ends (an item
    named before such text was refused at the boundary) still gives one reply line."""
    await casino.economy.create_item(1, name="odd\u2028na\u2029m\x85e", price=1)
    output = await console_json.converse(
        commands, b'{"command": "shop"}\n{"command": "balance"}\n', json_mode=True, seconds=30
    )
    shop, balance = (json.loads(line) for line in output.splitlines())
    assert shop["result"]["items"][0]["name"] == "odd\u2028na\u2029m\x85e"
    assert balance["ok"]
