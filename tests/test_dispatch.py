"""The dispatcher: validation, admin check, rate limit, error mapping and metrics."""

from __future__ import annotations

import itertools
import logging
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from actors import ActorCrashed, ActorStopped, AskTimeout, RuntimeFailure
from actors.errors import Busy
from bot import ButtonPress, Command, CommandSet, Invocation, Option, OptionKind, Reply, UserRef
from bot.dispatch import TRANSIENT_ERROR_CODES, TokenBuckets
from limits import RateLimit
from metrics import Metrics
from tests.conftest import sample
from tests.toy_commands import ToyBank

_ids = itertools.count(1)


def inv(command: str, by: int = 42, *, admin: bool = False, **options: Any) -> Invocation:
    return Invocation(
        command=command,
        interaction_id=next(_ids),
        user_id=by,
        guild_id=1,
        can_manage_guild=admin,
        options=options,
    )


def press(custom_id: str, user: int = 42) -> ButtonPress:
    return ButtonPress(custom_id=custom_id, interaction_id=next(_ids), user_id=user, guild_id=1)


@pytest.fixture
def bank() -> ToyBank:
    return ToyBank()


@pytest.fixture
def commands(bank: ToyBank, metrics: Metrics) -> CommandSet:
    return bank.command_set(
        metrics, rate_limit=RateLimit(refill_per_second=100, burst_commands=100)
    )


@pytest.mark.parametrize(
    ("command", "options", "field", "words"),
    [
        ("pay", {"amount": 5}, "user", "is required"),
        ("pay", {"user": UserRef(43), "amount": 5, "tip": 1}, "tip", "no such option"),
        ("pay", {"user": 43, "amount": 5}, "user", "not a user"),
        ("pay", {"user": UserRef(43), "amount": "5"}, "amount", "not a whole number"),
        ("pay", {"user": UserRef(43), "amount": True}, "amount", "not a whole number"),
        ("pay", {"user": UserRef(43), "amount": 0}, "amount", "at least 1"),
        ("pay", {"user": UserRef(43), "amount": 10_001}, "amount", "at most 10000"),
        ("pay", {"user": UserRef(43), "amount": 5, "reason": "x" * 21}, "reason", "20 characters"),
        ("pay", {"user": UserRef(43), "amount": 5, "reason": 7}, "reason", "not text"),
        ("bet", {"colour": "green"}, "colour", "one of: red, black"),
        ("bet", {"colour": "red", "double": "yes"}, "double", "true or false"),
        ("bet", {"colour": "red", "stake": 7}, "stake", "one of: 5, 10"),
    ],
)
async def test_invalid_options_name_the_option(
    commands: CommandSet,
    bank: ToyBank,
    command: str,
    options: dict[str, Any],
    field: str,
    words: str,
) -> None:
    """Each kind of bad option is refused before the handler, naming the option."""
    reply = await commands.invoke(inv(command, **options))
    assert reply.error_code == "invalid_input"
    assert reply.ephemeral
    assert reply.description.startswith(f"{field}: ")
    assert words in reply.description
    assert bank.seen == []


async def test_valid_options_reach_the_handler(commands: CommandSet, bank: ToyBank) -> None:
    """Well-typed options inside their bounds run the handler and return its reply."""
    reply = await commands.invoke(inv("bet", colour="black", double=False, stake=10))
    assert reply.error_code is None
    assert reply.result == {"colour": "black", "double": False, "stake": 10}
    assert len(bank.seen) == 1


async def test_admin_only_needs_manage_guild(commands: CommandSet, bank: ToyBank) -> None:
    """An admin command is refused without Manage Server and runs with it."""
    refused = await commands.invoke(inv("mint", amount=5))
    assert refused.error_code == "not_permitted"
    assert "/mint" in refused.description
    granted = await commands.invoke(inv("mint", admin=True, amount=5))
    assert granted.result == {"balance": 105}
    assert len(bank.seen) == 1


async def test_rate_limit_refills_over_time(
    bank: ToyBank, metrics: Metrics, autojump_clock: trio.testing.MockClock
) -> None:
    """A user past the burst is refused with the wait, others are not, and time refills."""
    commands = bank.command_set(
        metrics, rate_limit=RateLimit(refill_per_second=0.5, burst_commands=2)
    )
    assert (await commands.invoke(inv("balance"))).error_code is None
    assert (await commands.invoke(inv("balance"))).error_code is None
    refused = await commands.invoke(inv("balance"))
    assert refused.error_code == "rate_limited"
    assert "2 s" in refused.description
    assert (await commands.invoke(inv("balance", by=7))).error_code is None
    assert sample(metrics, "croupier_ratelimit_rejections_total", command="balance") == 1
    await trio.sleep(1.9)
    assert (await commands.invoke(inv("balance"))).error_code == "rate_limited"
    await trio.sleep(0.1)
    assert (await commands.invoke(inv("balance"))).error_code is None
    assert len(bank.seen) == 4


async def test_rate_limit_memory_is_bounded(bank: ToyBank, metrics: Metrics) -> None:
    """Many distinct users never hold more buckets than tracked_users_max."""
    commands = bank.command_set(metrics, rate_limit=RateLimit(tracked_users_max=50))
    for user in range(1, 1_001):
        await commands.invoke(inv("balance", by=user))
    assert commands.tracked_users() == 50


def test_token_buckets_evict_the_least_recently_active() -> None:
    """Past the bound, the quietest user's bucket goes and the active user's stays."""
    now = [0.0]
    buckets = TokenBuckets(
        RateLimit(refill_per_second=1, burst_commands=1, tracked_users_max=2), lambda: now[0]
    )
    assert buckets.take(1) == 0
    assert buckets.take(2) == 0
    assert buckets.take(1) == pytest.approx(1.0)
    assert buckets.take(3) == 0
    assert len(buckets) == 2
    assert buckets.take(1) == pytest.approx(1.0)
    assert buckets.take(2) == 0


@given(st.lists(st.floats(min_value=0, max_value=3, allow_nan=False), min_size=1, max_size=60))
def test_token_bucket_never_grants_more_than_burst_plus_refill(gaps: list[float]) -> None:
    """Over any sequence of requests one user is granted at most burst + rate x elapsed."""
    limit = RateLimit(refill_per_second=2, burst_commands=3)
    now = [0.0]
    buckets = TokenBuckets(limit, lambda: now[0])
    granted = 0
    for gap in gaps:
        now[0] += gap
        granted += buckets.take(42) == 0
    assert granted <= limit.burst_commands + limit.refill_per_second * now[0] + 1e-9


async def test_typed_error_becomes_ephemeral_error_reply(
    commands: CommandSet, metrics: Metrics
) -> None:
    """A CroupierError from a handler becomes an ephemeral reply with its code and message."""
    reply = await commands.invoke(inv("pay", user=UserRef(43, bot=True), amount=5))
    assert reply.ephemeral
    assert reply.error_code == "bot_recipient"
    assert reply.description == "user 43 is a bot and cannot hold money; pick a member"
    assert sample(metrics, "croupier_commands_total", command="pay", outcome="error") == 1


async def test_bug_becomes_logged_internal_error(
    commands: CommandSet, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    """Any other exception becomes an "internal" reply and is logged with its traceback."""
    with caplog.at_level(logging.ERROR, logger="bot.dispatch"):
        reply = await commands.invoke(inv("boom"))
    assert reply.error_code == "internal"
    assert reply.ephemeral
    assert "exploded" not in reply.description
    [record] = caplog.records
    assert "/boom" in record.getMessage()
    assert record.exc_info is not None and "exploded" in str(record.exc_info[1])
    assert sample(metrics, "croupier_commands_total", command="boom", outcome="failed") == 1


@pytest.mark.parametrize(
    "failure",
    [
        AskTimeout("wallet", 5.0),
        ActorStopped("wallet"),
        ActorCrashed("game", RuntimeError("a bug")),
    ],
)
async def test_runtime_failures_are_answered_busy(
    failure: RuntimeFailure, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    """Every runtime failure is answered with the user-facing "busy" error, not logged as
    a bug, and is transient, so the interaction's retry runs again."""

    async def handler(inv: Invocation) -> Reply:
        raise failure

    commands = CommandSet([Command("stuck", "Fails in the runtime", (), handler)], metrics=metrics)
    with caplog.at_level(logging.ERROR, logger="bot.dispatch"):
        reply = await commands.invoke(inv("stuck"))
    assert reply.ephemeral
    assert reply.error_code == Busy.code and reply.error_code in TRANSIENT_ERROR_CODES
    assert reply.description == Busy().message
    assert caplog.records == []
    assert sample(metrics, "croupier_commands_total", command="stuck", outcome="error") == 1


async def test_cancellation_is_not_swallowed(
    commands: CommandSet, bank: ToyBank, metrics: Metrics
) -> None:
    """Cancelling a command mid-handler unwinds as Cancelled, not as an error reply."""
    replies: list[Reply] = []
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:

            async def run() -> None:
                replies.append(await commands.invoke(inv("slow")))

            nursery.start_soon(run)
            await bank.slow_started.wait()
            scope.cancel()
    assert scope.cancelled_caught
    assert replies == []
    assert sample(metrics, "croupier_commands_total", command="slow", outcome="failed") == 0


async def test_metrics_count_outcomes_and_durations(commands: CommandSet, metrics: Metrics) -> None:
    """Outcomes are counted per command, unknown names under one label, durations observed."""
    await commands.invoke(inv("balance"))
    await commands.invoke(inv("balance"))
    await commands.invoke(inv("pay", amount=5))
    unknown = await commands.invoke(inv("no-such-command"))
    assert unknown.error_code == "not_found"
    assert sample(metrics, "croupier_commands_total", command="balance", outcome="ok") == 2
    assert sample(metrics, "croupier_commands_total", command="pay", outcome="error") == 1
    assert sample(metrics, "croupier_commands_total", command="unknown", outcome="error") == 1
    assert sample(metrics, "croupier_command_duration_seconds_count", command="balance") == 2


async def test_buttons_route_by_prefix(
    commands: CommandSet, bank: ToyBank, metrics: Metrics
) -> None:
    """A press goes to the route named by its custom id prefix; unknown ids are refused."""
    reply = await commands.press(press("game:42:hit"))
    assert reply.result == {"move": "hit"}
    other = await commands.press(press("game:42:hit", user=43))
    assert other.ephemeral and other.title == "Not your game"
    unknown = await commands.press(press("lottery:1"))
    assert unknown.error_code == "not_found"
    assert len(bank.seen) == 2
    assert sample(metrics, "croupier_commands_total", command="button:game", outcome="ok") == 2
    assert (
        sample(metrics, "croupier_commands_total", command="button:unknown", outcome="error") == 1
    )


async def test_button_presses_share_the_rate_limit(bank: ToyBank, metrics: Metrics) -> None:
    """Button presses spend the same per-user tokens as commands."""
    commands = bank.command_set(
        metrics, rate_limit=RateLimit(refill_per_second=0.1, burst_commands=1)
    )
    assert (await commands.invoke(inv("game"))).error_code is None
    assert (await commands.press(press("game:42:hit"))).error_code == "rate_limited"
    assert sample(metrics, "croupier_ratelimit_rejections_total", command="button:game") == 1


async def _noop(inv: Invocation) -> Reply:
    return Reply(title="noop")


@pytest.mark.parametrize(
    ("command", "words"),
    [
        (Command("Pay", "Pay", (), _noop), "must match"),
        (Command("pay", "", (), _noop), "description"),
        (
            Command(
                "pay",
                "Pay",
                (
                    Option("a", OptionKind.STRING, "A", required=False),
                    Option("b", OptionKind.STRING, "B"),
                ),
                _noop,
            ),
            "required options must come before",
        ),
        (
            Command("pay", "Pay", (Option("a", OptionKind.STRING, "A", min_value=1),), _noop),
            "min_value",
        ),
        (
            Command("pay", "Pay", (Option("a", OptionKind.INTEGER, "A", choices=("x",)),), _noop),
            "whole number",
        ),
    ],
)
def test_commands_discord_would_refuse_are_refused(
    command: Command, words: str, metrics: Metrics
) -> None:
    """A command set refuses, at construction, a command Discord would not register."""
    with pytest.raises(ValueError, match=words):
        CommandSet([command], metrics=metrics)


def test_duplicate_command_names_are_refused(metrics: Metrics) -> None:
    """Two commands with one name cannot both be served."""
    with pytest.raises(ValueError, match="two commands"):
        CommandSet(
            [Command("pay", "Pay", (), _noop), Command("pay", "Pay", (), _noop)], metrics=metrics
        )
