"""Answers that do not change: an interaction id keeps its first answer, success or
refusal, across redeliveries and restarts; another request under the same id is refused;
transient refusals are not kept."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from actors import AnswerLog
from bot import ButtonPress, CommandSet, Invocation, Reply, UserRef
from bot.commands import build_command_set
from bot.commands.games import games_commands
from limits import RateLimit
from tests.conftest import sample
from tests.economy_fixtures import T0, RunningGames, running_games
from tests.support.invoke import ok, refused

ALICE, BOB, ADMIN = 42, 43, 7
START = 100


def command_set(casino: RunningGames, *, burst: int = 1_000_000) -> CommandSet:
    extra, buttons = games_commands(casino.games, casino.economy)
    return build_command_set(
        economy=casino.economy,
        metrics=casino.metrics,
        rate_limit=RateLimit(burst_commands=burst),
        extra_commands=extra,
        extra_buttons=buttons,
    )


@pytest.fixture
async def casino(tmp_path: Path) -> AsyncIterator[RunningGames]:
    async with running_games(tmp_path) as running:
        await running.economy.update_settings(1, {"game_cooldown_seconds": 0})
        yield running


@pytest.fixture
def commands(casino: RunningGames) -> CommandSet:
    return command_set(casino)


async def send(
    commands: CommandSet,
    interaction: int,
    command: str,
    *,
    by: int = ALICE,
    guild: int = 1,
    admin: bool = False,
    **options: object,
) -> Reply:
    return await commands.invoke(
        Invocation(
            command=command,
            interaction_id=interaction,
            user_id=by,
            guild_id=guild,
            can_manage_guild=admin,
            options=options,
        )
    )


async def click(
    commands: CommandSet, interaction: int, custom_id: str, *, by: int = ALICE
) -> Reply:
    return await commands.press(
        ButtonPress(custom_id=custom_id, interaction_id=interaction, user_id=by, guild_id=1)
    )


_next = [5_000_000]


def _fresh() -> int:
    _next[0] += 1
    return _next[0]


async def test_a_refused_payment_repeated_after_a_top_up_stays_refused(
    commands: CommandSet,
) -> None:
    """A /pay refused for want of funds keeps that answer when it is redelivered after
    the sender got the money: a retry never turns into a different outcome."""
    first = await send(commands, 501, "pay", user=UserRef(BOB), amount=START + 50)
    assert refused(first) == "insufficient_funds"
    ok(
        await send(
            commands,
            _fresh(),
            "money-add",
            by=ADMIN,
            admin=True,
            user=UserRef(ALICE),
            amount=500,
            reason="top up",
        )
    )
    again = await send(commands, 501, "pay", user=UserRef(BOB), amount=START + 50)
    assert again == first
    assert ok(await send(commands, _fresh(), "balance", by=BOB))["balance"] == START


async def test_a_blackjack_refusal_is_not_later_taken_as_a_new_stake(
    commands: CommandSet,
) -> None:
    """A /blackjack refused (stake above the balance) answers the same on redelivery,
    so no stake is taken later under the same interaction."""
    first = await send(commands, 601, "blackjack", stake=START * 2)
    assert refused(first) == "insufficient_funds"
    ok(
        await send(
            commands,
            _fresh(),
            "money-add",
            by=ADMIN,
            admin=True,
            user=UserRef(ALICE),
            amount=1_000,
            reason="top up",
        )
    )
    assert await send(commands, 601, "blackjack", stake=START * 2) == first
    assert ok(await send(commands, _fresh(), "balance"))["balance"] == START + 1_000


async def test_a_redelivered_button_press_gets_its_first_answer(commands: CommandSet) -> None:
    """Pressing a blackjack button, then the same press redelivered, answers the same
    (not game_over or a stale step)."""
    # A natural settles at once and has no buttons; deal until a hand is live.
    for interaction in range(701, 721):
        game = await send(commands, interaction, "blackjack", stake=1)
        if game.buttons:
            break
    assert game.buttons
    stand = next(b for b in game.buttons if b.custom_id.endswith(":stand"))
    first = await click(commands, 799, stand.custom_id)
    ok(first)
    assert await click(commands, 799, stand.custom_id) == first
    assert await send(commands, interaction, "blackjack", stake=1) == game


@pytest.mark.parametrize(
    "changed",
    [
        {"command": "balance"},
        {"amount": 2},
        {"by": BOB},
        {"guild": 2},
        {"reason": "other"},
    ],
)
async def test_an_id_reused_for_another_request_is_refused_and_changes_nothing(
    commands: CommandSet, casino: RunningGames, changed: dict[str, object]
) -> None:
    """The same interaction id with another command, options, user or guild is refused
    with id_reused; balances stay as the first request left them."""
    request: dict[str, object] = {"command": "pay", "user": UserRef(BOB), "amount": 1}
    ok(await send(commands, 801, **request))  # type: ignore[arg-type]
    before = casino.check()
    assert before.ok
    reply = await send(commands, 801, **{**request, **changed})  # type: ignore[arg-type]
    assert refused(reply) == "id_reused"
    assert ok(await send(commands, _fresh(), "balance"))["balance"] == START - 1
    assert ok(await send(commands, _fresh(), "balance", by=BOB))["balance"] == START + 1


async def test_an_id_reused_for_a_button_is_refused(commands: CommandSet) -> None:
    """A button press under a command's interaction id is another request."""
    ok(await send(commands, 901, "leaderboard"))
    assert refused(await click(commands, 901, "lb:2")) == "id_reused"


async def test_a_transient_refusal_is_not_kept(casino: RunningGames) -> None:
    """A rate-limited request stores nothing, so the retry it asks for goes through."""
    clock = [0.0]
    commands = CommandSet(
        build_command_set(economy=casino.economy, metrics=casino.metrics, rate_limit=None).commands,
        rate_limit=RateLimit(refill_per_second=1.0, burst_commands=1),
        metrics=casino.metrics,
        clock=lambda: clock[0],
        answers=AnswerLog(casino.store, casino.economy.context.now),
    )
    ok(await send(commands, 1001, "daily"))
    assert refused(await send(commands, 1002, "work")) == "rate_limited"
    clock[0] += 5.0
    assert ok(await send(commands, 1002, "work"))["kind"] == "work"


async def test_concurrent_redeliveries_run_once_and_answer_alike(
    commands: CommandSet, casino: RunningGames
) -> None:
    """Fifty deliveries of one /pay at once move the money once and all get the same
    answer."""
    replies: list[Reply] = []

    async def deliver() -> None:
        replies.append(await send(commands, 1101, "pay", user=UserRef(BOB), amount=3))

    async with trio.open_nursery() as nursery:
        for _ in range(50):
            nursery.start_soon(deliver)
    assert len({repr(r) for r in replies}) == 1
    ok(replies[0])
    assert ok(await send(commands, _fresh(), "balance", by=BOB))["balance"] == START + 3
    assert sample(casino.metrics, "croupier_commands_total", command="pay", outcome="ok") == 1


async def test_answers_survive_a_restart(tmp_path: Path) -> None:
    """A stored answer is durable: after the store is closed and opened again, a
    redelivery gets it and an id reuse is still refused."""
    async with running_games(tmp_path) as casino:
        first = await send(command_set(casino), 1201, "pay", user=UserRef(BOB), amount=START + 1)
        assert refused(first) == "insufficient_funds"
    async with running_games(tmp_path) as casino:
        commands = command_set(casino)
        assert await send(commands, 1201, "pay", user=UserRef(BOB), amount=START + 1) == first
        assert refused(await send(commands, 1201, "daily")) == "id_reused"


async def test_answers_are_forgotten_after_the_retention(
    commands: CommandSet, casino: RunningGames
) -> None:
    """Pruning forgets answers older than the cut-off and keeps younger ones."""
    assert commands.answers is not None
    ok(await send(commands, 1301, "balance"))
    casino.clock.advance(3600)
    ok(await send(commands, 1302, "balance"))
    assert await commands.answers.prune(T0 + 10) == 1
    assert commands.answers.get(1301) is None
    assert commands.answers.get(1302) is not None
    assert await commands.answers.prune(T0 + 7200) == 1
    assert commands.answers.get(1302) is None


async def test_the_servers_retention_pass_forgets_answers_with_results(
    commands: CommandSet, casino: RunningGames
) -> None:
    """The periodic retention pass prunes stored answers on the week's schedule of the
    wallets' stored results, and counts them."""
    from bot.periodic import prune_idempotency_once

    ok(await send(commands, 1401, "daily"))
    assert await prune_idempotency_once(casino.economy, casino.metrics, commands) == 0
    casino.clock.advance(casino.economy.limits.idempotency_retention_seconds + 1)
    # The daily's stored result in the wallet and the interaction's answer.
    assert await prune_idempotency_once(casino.economy, casino.metrics, commands) == 2
    assert commands.answers is not None and commands.answers.get(1401) is None
