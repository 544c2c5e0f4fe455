"""The casino commands and blackjack buttons through the dispatcher, over real games."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from actors import ScopeSettings
from actors.games import rules
from actors.games.rules import blackjack as bj
from actors.games.rules import slots
from bot import Button, CommandSet, Reply
from bot.commands.games import games_commands
from bot.console_human import help_text
from limits import RateLimit
from metrics import new_metrics
from tests.economy_fixtures import RunningGames, running_games
from tests.support.invoke import ok, press, refused, run
from tests.test_games import CLIENT_SEED, seed_where

G = 1
ALICE, BOB = 42, 43
START = ScopeSettings().starting_balance
# Every test here runs more commands than a person could; the limit has its own tests.
UNTHROTTLED = RateLimit(burst_commands=100_000)

# A forced deal's rotation takes its interaction id plus this, below the generated ids.
ROTATION_IDS = 300_000

Deal = Callable[[bj.BlackjackState], bool]


@pytest.fixture
async def casino(tmp_path: Path) -> AsyncIterator[RunningGames]:
    async with running_games(tmp_path) as running:
        await running.economy.update_settings(G, {"game_cooldown_seconds": 0})
        yield running


def command_set(casino: RunningGames) -> CommandSet:
    commands, buttons = games_commands(casino.games, casino.economy)
    return CommandSet(commands, buttons, metrics=new_metrics(), rate_limit=UNTHROTTLED)


@pytest.fixture
def commands(casino: RunningGames) -> CommandSet:
    return command_set(casino)


@pytest.fixture
def force_seed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Make the next seed pairs use a chosen server seed (found with ``seed_where``)."""
    chosen: list[str] = []
    original = rules.new_server_seed
    monkeypatch.setattr(rules, "new_server_seed", lambda: chosen[-1] if chosen else original())
    yield chosen.append


async def deal(
    commands: CommandSet,
    force_seed: Callable[[str], None],
    wanted: Deal,
    interaction: int,
    stake: int = 10,
) -> Reply:
    """Start a blackjack game whose deal satisfies ``wanted``: the player first rotates to
    a seed pair with the forced server seed and ``CLIENT_SEED``, so the deal is its nonce 0."""
    force_seed(seed_where(wanted, 0))
    # A pair commits the next pair's seed: the first rotation commits the forced seed as
    # the next, the second deals from it.
    await rotate(commands, interaction + ROTATION_IDS)
    await rotate(commands, interaction + 2 * ROTATION_IDS)
    return await run(commands, "blackjack", interaction=interaction, stake=stake)


async def rotate(commands: CommandSet, interaction: int | None = None, by: int = ALICE) -> Reply:
    """``/fairness client_seed:CLIENT_SEED``: reveals the player's pair, opens the next."""
    return await run(commands, "fairness", interaction=interaction, by=by, client_seed=CLIENT_SEED)


def button(reply: Reply, label: str) -> Button:
    (found,) = [b for b in reply.buttons if b.label == label]
    return found


def text(reply: Reply) -> str:
    """Everything a reader sees of an embed."""
    fields = "\n".join(f"{f.name}: {f.value}" for f in reply.fields)
    return f"{reply.title}\n{reply.description}\n{fields}\n{reply.footer}"


async def balance(casino: RunningGames) -> int:
    return (await casino.economy.balance(G, ALICE)).balance


def live_plain(state: bj.BlackjackState) -> bool:
    """Nobody has a natural and the player holds no pair."""
    return not bj.is_settled(state) and bj.Action.SPLIT not in bj.legal_actions(state)


def hit_stays_live(state: bj.BlackjackState) -> bool:
    """A plain deal where one hit leaves the player still to act."""
    return live_plain(state) and not bj.is_settled(bj.apply(state, bj.Action.HIT))


def split_stays_live(state: bj.BlackjackState) -> bool:
    """A pair whose split leaves the player still to act."""
    return (
        not bj.is_settled(state)
        and bj.Action.SPLIT in bj.legal_actions(state)
        and not bj.is_settled(bj.apply(state, bj.Action.SPLIT))
    )


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("coinflip", {"choice": "heads"}),
        ("coinflip", {"choice": "tails"}),
        ("dice", {"bet": "number", "number": 3}),
        ("dice", {"bet": "over"}),
        ("dice", {"bet": "under"}),
        ("slots", {}),
        ("roulette", {"bet": "straight", "number": 0}),
        ("roulette", {"bet": "red"}),
        ("roulette", {"bet": "dozen", "number": 2}),
        ("roulette", {"bet": "column", "number": 3}),
    ],
)
async def test_instant_game_commands_settle_and_verify(
    casino: RunningGames, commands: CommandSet, command: str, options: dict[str, Any]
) -> None:
    """Each instant game pays out once per interaction, shows its seeds and verifies."""
    reply = await run(commands, command, interaction=5000, stake=10, **options)
    result = ok(reply)
    assert result["kind"] == command and result["phase"] == "settled"
    assert result["balance"] == START - 10 + result["payout"] == await balance(casino)
    assert result["net"] == result["payout"] - 10 and not reply.buttons
    assert result["server_seed"] == "" and result["nonce"] == 0
    for shown in (result["seed_hash"], result["client_seed"]):
        assert shown in text(reply)
    assert "🪙 10 coins" in text(reply) and "Nonce: 0" in text(reply)
    assert f"/verify game:{result['game_id']}" in reply.footer
    again = ok(await run(commands, command, interaction=5000, stake=10, **options))
    assert again["game_id"] == result["game_id"], "a redelivered interaction plays once"
    assert await balance(casino) == result["balance"]
    assert refused(await run(commands, "verify", game=result["game_id"])) == "seed_not_revealed"
    revealed = ok(await rotate(commands))["revealed"]
    assert revealed["seed_hash"] == result["seed_hash"] and revealed["next_nonce"] == 1
    assert hashlib.sha256(revealed["server_seed"].encode()).hexdigest() == result["seed_hash"]
    verified = ok(await run(commands, "verify", game=result["game_id"]))
    assert verified["matches"] and verified["stored"]["payout"] == result["payout"]
    assert casino.check().ok


async def test_replies_speak_the_scopes_currency(
    casino: RunningGames, commands: CommandSet
) -> None:
    """Amounts are shown in the currency the server configured."""
    await casino.economy.update_settings(G, {"currency_name": "chips", "currency_symbol": "♣"})
    reply = await run(commands, "slots", stake=7)
    assert "♣ 7 chips" in text(reply) and "coins" not in text(reply)


async def test_the_client_seed_the_player_sets_is_used(commands: CommandSet) -> None:
    """A client seed set with /fairness goes into the next draw and the reply."""
    await run(commands, "fairness", client_seed="my lucky seed")
    result = ok(await run(commands, "coinflip", stake=1, choice="heads"))
    assert result["client_seed"] == "my lucky seed" and result["nonce"] == 0
    revealed = ok(await run(commands, "fairness", client_seed="another"))["revealed"]
    recomputed = rules.verify(
        "coinflip",
        revealed["server_seed"],
        "my lucky seed",
        result["nonce"],
        {"stake": 1, "choice": "heads"},
    )
    assert recomputed["detail"] == result["detail"]


async def test_rules_and_pay_table(commands: CommandSet) -> None:
    """The blackjack rules, the slots reel strip and pay table are one command away."""
    rules_reply = ok(await run(commands, "blackjack-rules"))
    assert rules_reply["rules"] == bj.rules_text().splitlines()
    table = await run(commands, "slots-table")
    assert table.description == slots.paytable_text()
    assert ok(table)["reel"] == list(slots.REEL) and len(ok(table)["paytable"]) == 8


async def test_blackjack_hit_then_stand_by_buttons(
    casino: RunningGames, commands: CommandSet, force_seed: Callable[[str], None]
) -> None:
    """A whole round played by custom ids: live table, hit, stand, settled and verified."""
    start = await deal(commands, force_seed, hit_stays_live, 2001, stake=20)
    live = ok(start)
    game_id = live["game_id"]
    assert live["phase"] == "live" and live["server_seed"] == "" and len(live["dealer"]) == 1
    assert live["balance"] == START - 20 == await balance(casino)
    assert [b.custom_id for b in start.buttons] == [
        f"bj:{game_id}:0:{action}" for action in ("hit", "stand", "double", "split")
    ]
    assert [b.disabled for b in start.buttons] == [False, False, False, True]
    assert f"<t:{int(live['deadline'])}:R>" in text(start) and live["seed_hash"] in text(start)
    assert " ".join(live["hands"][0]["cards"]) in start.description
    assert live["dealer"][0] in start.description

    hit = await press(commands, button(start, "Hit").custom_id)
    after_hit = ok(hit)
    assert after_hit["phase"] == "live" and after_hit["step"] == 1
    assert len(after_hit["hands"][0]["cards"]) == 3
    assert button(hit, "Double").disabled and not button(hit, "Stand").disabled

    stand = await press(commands, button(hit, "Stand").custom_id)
    done = ok(stand)
    assert done["phase"] == "settled" and not stand.buttons and len(done["dealer"]) >= 2
    assert done["server_seed"] == "" and done["seed_hash"] == live["seed_hash"]
    assert done["balance"] == START - 20 + done["payout"] == await balance(casino)
    assert live["seed_hash"] in text(stand) and f"/verify game:{game_id}" in stand.footer
    assert " ".join(done["dealer"]) in stand.description
    revealed = ok(await rotate(commands))["revealed"]
    assert hashlib.sha256(revealed["server_seed"].encode()).hexdigest() == live["seed_hash"]
    assert ok(await run(commands, "verify", game=game_id))["matches"]

    assert refused(await press(commands, button(hit, "Hit").custom_id)) == "game_over"
    assert await balance(casino) == done["balance"] and casino.check().ok


async def test_blackjack_double_by_button(
    casino: RunningGames, commands: CommandSet, force_seed: Callable[[str], None]
) -> None:
    """Double raises the stake through the wallet and settles the round."""
    start = await deal(commands, force_seed, live_plain, 3001, stake=30)
    done = ok(await press(commands, button(start, "Double").custom_id))
    assert done["phase"] == "settled" and done["staked"] == 60
    assert len(done["detail"]["hands"][0]["cards"]) == 3
    assert done["balance"] == START - 60 + done["payout"] == await balance(casino)
    assert casino.check().ok


async def test_blackjack_split_by_buttons(
    casino: RunningGames, commands: CommandSet, force_seed: Callable[[str], None]
) -> None:
    """A pair splits into two hands played in turn; both are shown when settled."""
    start = await deal(commands, force_seed, split_stays_live, 4001)
    assert not button(start, "Split").disabled
    reply = await press(commands, button(start, "Split").custom_id)
    split = ok(reply)
    assert len(split["hands"]) == 2 and split["staked"] == 20
    assert "▶ **Hand 1:**" in reply.description and "**Hand 2:**" in reply.description
    while reply.buttons:
        reply = await press(commands, button(reply, "Stand").custom_id)
    done = ok(reply)
    assert done["phase"] == "settled" and len(done["detail"]["hands"]) == 2
    assert "**Hand 1:**" in reply.description and "**Hand 2:**" in reply.description
    assert done["balance"] == START - 20 + done["payout"] == await balance(casino)
    assert casino.check().ok


async def test_a_natural_settles_at_the_deal(
    commands: CommandSet, force_seed: Callable[[str], None]
) -> None:
    """A deal with a natural comes back settled, with no buttons and the seed revealed."""
    reply = await deal(commands, force_seed, bj.is_settled, 4501)
    result = ok(reply)
    assert result["phase"] == "settled" and not reply.buttons and result["server_seed"] == ""
    assert result["nonce"] == 0 and result["client_seed"] == CLIENT_SEED


async def test_another_players_press_is_refused(
    casino: RunningGames, commands: CommandSet, force_seed: Callable[[str], None]
) -> None:
    """Pressing someone else's game is an ephemeral refusal that changes nothing."""
    start = await deal(commands, force_seed, live_plain, 5001)
    hit = button(start, "Hit").custom_id
    assert refused(await press(commands, hit, by=BOB)) == "not_your_game"
    assert ok(await press(commands, hit))["step"] == 1, "the owner's press still applies"
    assert (await casino.economy.balance(G, BOB)).balance == START


async def test_a_stale_double_press_applies_once(
    casino: RunningGames, commands: CommandSet, force_seed: Callable[[str], None]
) -> None:
    """A second press of the same button re-renders the game instead of moving again."""
    start = await deal(commands, force_seed, hit_stays_live, 6001)
    first = ok(await press(commands, button(start, "Hit").custom_id))
    stale = await press(commands, button(start, "Hit").custom_id)
    second = ok(stale)
    assert second["step"] == first["step"] == 1 and second["hands"] == first["hands"]
    assert "already used" in second["note"] and "already used" in stale.description
    assert button(stale, "Hit").custom_id == f"bj:{first['game_id']}:1:hit"
    assert await balance(casino) == START - 10 and casino.check().ok


async def test_a_double_pressed_twice_raises_the_stake_once(
    casino: RunningGames, commands: CommandSet, force_seed: Callable[[str], None]
) -> None:
    """A repeated Double after the round settled is refused and takes no more coins."""
    start = await deal(commands, force_seed, live_plain, 6101, stake=25)
    done = ok(await press(commands, button(start, "Double").custom_id))
    assert refused(await press(commands, button(start, "Double").custom_id)) == "game_over"
    assert await balance(casino) == START - 50 + done["payout"] and casino.check().ok


async def test_a_second_game_shows_the_running_one(
    casino: RunningGames, commands: CommandSet, force_seed: Callable[[str], None]
) -> None:
    """Starting blackjack during a game takes no stake and shows that game's buttons."""
    start = await deal(commands, force_seed, live_plain, 7001)
    again = await run(commands, "blackjack", stake=10)
    shown = ok(again)
    assert shown["game_id"] == start.result["game_id"] and "no new stake" in shown["note"]
    assert again.buttons == start.buttons
    assert await balance(casino) == START - 10


async def test_illegal_and_malformed_presses_are_refused(
    commands: CommandSet, force_seed: Callable[[str], None]
) -> None:
    """A disabled action, a forged action, a bad custom id or a gone game are refused."""
    start = await deal(commands, force_seed, live_plain, 7101)
    game_id = start.result["game_id"]
    assert refused(await press(commands, button(start, "Split").custom_id)) == "illegal_move"
    assert refused(await press(commands, f"bj:{game_id}:0:fold")) == "invalid_input"
    assert refused(await press(commands, f"bj:{game_id}:x:hit")) == "not_found"
    assert refused(await press(commands, "bj:")) == "not_found"
    assert refused(await press(commands, "bj:ffffffffffff:0:hit")) == "not_found"
    assert ok(await press(commands, button(start, "Stand").custom_id))["phase"] == "settled"


async def test_buttons_survive_a_restart(tmp_path: Path, force_seed: Callable[[str], None]) -> None:
    """The custom id from before a restart plays the same game after it."""
    async with running_games(tmp_path) as casino:
        await casino.economy.update_settings(G, {"game_cooldown_seconds": 0})
        clock = casino.clock
        start = await deal(command_set(casino), force_seed, hit_stays_live, 8001)
        hit = button(start, "Hit").custom_id
    async with running_games(tmp_path, clock=clock) as casino:
        commands = command_set(casino)
        after_hit = await press(commands, hit)
        assert ok(after_hit)["step"] == 1
        done = ok(await press(commands, button(after_hit, "Stand").custom_id))
        assert done["phase"] == "settled"
        assert done["balance"] == START - 10 + done["payout"] == await balance(casino)
        await rotate(commands)
        assert ok(await run(commands, "verify", game=done["game_id"]))["matches"]
        assert casino.check().ok


@pytest.mark.parametrize(
    ("command", "options", "code"),
    [
        ("roulette", {"stake": 5, "bet": "straight", "number": 37}, "invalid_input"),
        ("roulette", {"stake": 5, "bet": "dozen", "number": 4}, "invalid_input"),
        ("roulette", {"stake": 5, "bet": "red", "number": 3}, "invalid_input"),
        ("roulette", {"stake": 5, "bet": "straight"}, "invalid_input"),
        ("roulette", {"stake": 5, "bet": "green"}, "invalid_input"),
        ("dice", {"stake": 5, "bet": "number"}, "invalid_input"),
        ("dice", {"stake": 5, "bet": "number", "number": 7}, "invalid_input"),
        ("coinflip", {"stake": 0, "choice": "heads"}, "invalid_input"),
        ("coinflip", {"stake": 1_000_001, "choice": "heads"}, "invalid_input"),
        ("coinflip", {"stake": 10**15 + 1, "choice": "heads"}, "invalid_input"),
        ("coinflip", {"stake": 5, "choice": "edge"}, "invalid_input"),
        ("slots", {"stake": 5, "seed": "tab\there"}, "invalid_input"),
        ("blackjack", {"stake": 1_000_001}, "invalid_input"),
        ("blackjack", {"stake": START + 1}, "insufficient_funds"),
        ("slots", {"stake": START + 1}, "insufficient_funds"),
    ],
)
async def test_bad_bets_are_refused_before_money_moves(
    casino: RunningGames,
    commands: CommandSet,
    command: str,
    options: dict[str, Any],
    code: str,
) -> None:
    """Bad options and stakes out of range come back as ephemeral typed errors."""
    assert refused(await run(commands, command, **options)) == code
    assert await balance(casino) == START and casino.check().ok


async def test_the_scopes_bet_limits_apply(casino: RunningGames, commands: CommandSet) -> None:
    """A stake past the server's bet_max is refused with the range the server allows."""
    await casino.economy.update_settings(G, {"bet_min": 5, "bet_max": 50})
    for stake in (4, 51):
        reply = await run(commands, "dice", stake=stake, bet="over")
        assert refused(reply) == "invalid_input" and "from 5 to 50" in reply.description
    assert ok(await run(commands, "dice", stake=50, bet="over"))["staked"] == 50


async def test_verify_refuses_live_and_unknown_games(
    commands: CommandSet, force_seed: Callable[[str], None]
) -> None:
    """Only a settled game can be verified; an unknown id is named as not found."""
    start = await deal(commands, force_seed, live_plain, 9001)
    assert refused(await run(commands, "verify", game=start.result["game_id"])) == "invalid_input"
    assert refused(await run(commands, "verify", game="nosuchgame")) == "not_found"


async def test_verify_seeds_recomputes_games_from_given_values(
    commands: CommandSet, force_seed: Callable[[str], None]
) -> None:
    """A player's own seeds and choices recompute the outcome the game settled with."""
    flip = ok(await run(commands, "roulette", stake=4, bet="dozen", number=1))
    revealed = ok(await rotate(commands))["revealed"]
    seeds = {
        "server_seed": revealed["server_seed"],
        "client_seed": flip["client_seed"],
        "nonce": str(flip["nonce"]),
    }
    again = ok(
        await run(
            commands, "verify-seeds", kind="roulette", stake=4, bet="dozen", number=1, **seeds
        )
    )
    assert (again["outcome"], again["payout"], again["detail"]) == (
        flip["outcome"],
        flip["payout"],
        flip["detail"],
    )
    assert again["seed_hash"] == flip["seed_hash"]

    start = await deal(commands, force_seed, hit_stays_live, 9101)
    hit = await press(commands, button(start, "Hit").custom_id)
    done = ok(await press(commands, button(hit, "Stand").custom_id))
    replayed = await run(
        commands,
        "verify-seeds",
        kind="blackjack",
        stake=10,
        actions="hit, stand",
        server_seed=ok(await rotate(commands))["revealed"]["server_seed"],
        client_seed=CLIENT_SEED,
        nonce=str(done["nonce"]),
    )
    assert ok(replayed)["detail"] == done["detail"]

    bad_nonce = {**seeds, "nonce": "-1"}
    assert refused(await run(commands, "verify-seeds", kind="slots", stake=4, **bad_nonce)) == (
        "invalid_input"
    )
    missing = await run(commands, "verify-seeds", kind="coinflip", stake=4, **seeds)
    assert refused(missing) == "invalid_input" and "choice" in missing.description


async def test_help_says_who_picks_the_client_seed_and_that_7_loses_over_and_under(
    commands: CommandSet,
) -> None:
    """/help states that a dice total of 7 loses both bets and who chooses the client seed."""
    text = " ".join(help_text(commands).split())
    assert "a total of 7 loses both" in text
    assert "a random one the server picks and shows" in text
