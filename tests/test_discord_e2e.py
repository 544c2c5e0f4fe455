"""The real interactions.py client, through ``run_discord``, against the fake Discord."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any, get_args

import pytest
import trio
from interactions.api.http.route import Route

from bot import CommandSet
from bot.discord_answers import Reason
from bot.discord_client import run_discord
from metrics import Metrics
from metrics.registry import DISCORD_UNANSWERED_REASONS
from tests.conftest import sample
from tests.fake_discord import GUILD_ID, FakeDiscord
from tests.support.discord import embed, serving
from tests.toy_commands import VIP_ROLE_ID, ToyBank

_EPHEMERAL = 1 << 6
_MANAGE_GUILD = 1 << 5
_ADMINISTRATOR = 1 << 3
_DISCORD_EPOCH_MS = 1_420_070_400_000


@pytest.fixture
def fake() -> Iterator[FakeDiscord]:
    with FakeDiscord() as running:
        yield running


@pytest.fixture
def bank() -> ToyBank:
    return ToyBank()


@pytest.fixture
def commands(bank: ToyBank, metrics: Metrics) -> CommandSet:
    return bank.command_set(metrics)


async def test_commands_sync_with_their_option_types(
    fake: FakeDiscord, commands: CommandSet, metrics: Metrics
) -> None:
    """Every command is registered as a guild-only slash command with typed options."""
    async with serving(fake, commands, metrics) as running:
        synced = {c["name"]: c for c in await fake.wait_commands_synced()}
        assert running.connections == [True]
        assert sample(metrics, "croupier_discord_connected") == 1
    assert set(synced) == {c.name for c in commands.commands}
    pay = {o["name"]: o for o in synced["pay"]["options"]}
    assert (pay["user"]["type"], pay["user"]["required"]) == (6, True)
    assert (pay["amount"]["type"], pay["amount"]["min_value"], pay["amount"]["max_value"]) == (
        4,
        1,
        10_000,
    )
    assert (pay["reason"]["type"], pay["reason"]["max_length"], pay["reason"]["required"]) == (
        3,
        20,
        False,
    )
    bet = {o["name"]: o for o in synced["bet"]["options"]}
    assert [c["value"] for c in bet["colour"]["choices"]] == ["red", "black"]
    assert [c["value"] for c in bet["stake"]["choices"]] == [5, 10]
    assert bet["double"]["type"] == 5
    assert synced["mint"]["default_member_permissions"] == str(_MANAGE_GUILD)
    assert synced["pay"]["default_member_permissions"] is None
    assert synced["pay"]["contexts"] == [0]
    assert fake.unknown_routes == []


async def test_slash_command_round_trip(
    fake: FakeDiscord, commands: CommandSet, bank: ToyBank, metrics: Metrics
) -> None:
    """A slash command runs with typed options and answers with its embed."""
    async with serving(fake, commands, metrics):
        await fake.wait_commands_synced()
        pay = fake.send_interaction(
            fake.slash_command("pay", {"user": 43, "amount": 30, "reason": "drinks"})
        )
        [callback] = await fake.wait_callbacks(pay)
    assert callback.type == 4
    assert callback.data.get("flags", 0) == 0
    assert callback.data["components"] == []
    assert embed(callback.data) == {
        "title": "Paid",
        "description": "Sent 30 coins to <@43>.",
        "color": 0xD4AF37,
        "fields": [{"name": "Reason", "value": "drinks", "inline": False}],
    }
    assert (bank.balance(42), bank.balance(43)) == (70, 130)
    assert bank.seen == [pay]
    assert sample(metrics, "croupier_discord_interactions_total", type="command") == 1
    assert sample(metrics, "croupier_commands_total", command="pay", outcome="ok") == 1


async def test_errors_are_ephemeral(
    fake: FakeDiscord, commands: CommandSet, bank: ToyBank, metrics: Metrics
) -> None:
    """Typed errors, refusals and bugs answer ephemerally; permissions come from the member."""
    async with serving(fake, commands, metrics):
        await fake.wait_commands_synced()
        to_bot = fake.send_interaction(
            fake.slash_command("pay", {"user": 99, "amount": 5}, bots=[99])
        )
        refused = fake.send_interaction(fake.slash_command("mint", {"amount": 5}))
        manager = fake.send_interaction(
            fake.slash_command("mint", {"amount": 5}, permissions=_MANAGE_GUILD)
        )
        admin = fake.send_interaction(
            fake.slash_command("mint", {"amount": 5}, user_id=7, permissions=_ADMINISTRATOR)
        )
        boom = fake.send_interaction(fake.slash_command("boom"))
        answers = {
            i: (await fake.wait_callbacks(i))[0] for i in (to_bot, refused, manager, admin, boom)
        }
    assert embed(answers[to_bot].data)["description"] == (
        "user 99 is a bot and cannot hold money; pick a member"
    )
    assert embed(answers[refused].data)["description"] == "/mint needs the Manage Server permission"
    assert embed(answers[boom].data)["title"] == "Something went wrong"
    for interaction in (to_bot, refused, boom):
        assert answers[interaction].data["flags"] == _EPHEMERAL
    for interaction in (manager, admin):
        assert answers[interaction].data.get("flags", 0) == 0
        assert embed(answers[interaction].data)["title"] == "Minted"
    assert (bank.balance(42), bank.balance(7)) == (105, 105)


async def test_button_press_edits_its_message(
    fake: FakeDiscord, commands: CommandSet, metrics: Metrics
) -> None:
    """Buttons come in rows of five; a press updates the message, another user's press
    gets an ephemeral answer and leaves the message alone."""
    async with serving(fake, commands, metrics):
        await fake.wait_commands_synced()
        game = fake.send_interaction(fake.slash_command("game"))
        await fake.wait_callbacks(game)
        message = fake.original_message(game)
        assert message is not None
        rows = message["components"]
        assert [len(row["components"]) for row in rows] == [5, 1]
        stand = rows[0]["components"][1]
        assert {k: stand[k] for k in ("type", "style", "label", "custom_id", "disabled")} == {
            "type": 2,
            "style": 1,
            "label": "Stand",
            "custom_id": "game:42:stand",
            "disabled": False,
        }
        intruder = fake.send_interaction(
            fake.button_press("game:42:stand", message=message, user_id=43)
        )
        [refusal] = await fake.wait_callbacks(intruder)
        owner = fake.send_interaction(fake.button_press("game:42:stand", message=message))
        [update] = await fake.wait_callbacks(owner)
    assert refusal.type == 4 and refusal.data["flags"] == _EPHEMERAL
    assert embed(refusal.data)["title"] == "Not your game"
    assert update.type == 7
    edited = fake.message(message["id"])
    assert embed(edited)["description"] == "You chose stand."
    assert edited["components"][0]["components"][0]["disabled"] is True
    assert sample(metrics, "croupier_discord_interactions_total", type="button") == 2


async def test_duplicated_interaction_reaches_the_handler_with_one_id(
    fake: FakeDiscord, commands: CommandSet, bank: ToyBank, metrics: Metrics
) -> None:
    """A redelivered INTERACTION_CREATE carries the same interaction id to the handler,
    so the domain applies it once; Discord's refusal of the second answer is survived."""
    async with serving(fake, commands, metrics):
        await fake.wait_commands_synced()
        payload = fake.slash_command("pay", {"user": 43, "amount": 10})
        pay = fake.send_interaction(payload)
        fake.send_interaction(payload)
        first, second = await fake.wait_callbacks(pay, count=2)
        after = fake.send_interaction(fake.slash_command("balance"))
        [balance] = await fake.wait_callbacks(after)
    assert bank.seen == [pay, pay, after]
    assert len(set(bank.seen[:2])) == 1
    assert (bank.balance(42), bank.balance(43)) == (90, 110)
    assert first.accepted and not second.accepted
    assert embed(balance.data)["description"] == "<@42> has 90 coins."


async def test_slow_command_is_deferred_then_answered(
    fake: FakeDiscord, commands: CommandSet, bank: ToyBank, metrics: Metrics
) -> None:
    """A command slower than the defer bound is acknowledged first; its public reply
    replaces the placeholder, an ephemeral one replaces it with a private follow-up."""
    async with serving(fake, commands, metrics, defer_after_seconds=0.05):
        await fake.wait_commands_synced()
        public = fake.send_interaction(fake.slash_command("slow"))
        secret = fake.send_interaction(fake.slash_command("slow", {"secret": True}))
        for interaction in (public, secret):
            [deferral] = await fake.wait_callbacks(interaction)
            assert (deferral.type, deferral.data) == (5, {})
        bank.slow_release.set()
        edited = await fake.wait_for(
            lambda: m if (m := fake.original_message(public)) and m["embeds"] else None,
            "edit of the placeholder",
        )
        [followup] = await fake.wait_for(lambda: fake.followups(secret) or None, "follow-up")
        await fake.wait_for(
            lambda: True if fake.original_message(secret) is None else None, "deletion"
        )
    assert embed(edited)["title"] == "Done" and edited["flags"] == 0
    assert embed(followup)["title"] == "Done" and followup["flags"] == _EPHEMERAL
    assert fake.unknown_routes == []


async def test_slow_button_press_is_deferred_then_answered(
    fake: FakeDiscord, commands: CommandSet, bank: ToyBank, metrics: Metrics
) -> None:
    """A slow press is acknowledged as a deferred update; the owner's reply edits the
    message, another user's ephemeral refusal arrives as a private follow-up."""
    async with serving(fake, commands, metrics, defer_after_seconds=0.05):
        await fake.wait_commands_synced()
        game = fake.send_interaction(fake.slash_command("game"))
        await fake.wait_callbacks(game)
        message = fake.original_message(game)
        assert message is not None
        owner = fake.send_interaction(fake.button_press("game:42:slow", message=message))
        intruder = fake.send_interaction(
            fake.button_press("game:42:slow", message=message, user_id=43)
        )
        for interaction in (owner, intruder):
            [deferral] = await fake.wait_callbacks(interaction)
            assert deferral.type == 6
        bank.slow_release.set()
        edited = await fake.wait_for(
            lambda: m if "slow" in embed(m := fake.message(message["id"]))["description"] else None,
            "edit of the game message",
        )
        [refusal] = await fake.wait_for(lambda: fake.followups(intruder) or None, "follow-up")
    assert embed(edited)["description"] == "You chose slow."
    assert embed(refusal)["title"] == "Not your game" and refusal["flags"] == _EPHEMERAL


async def test_reply_grants_roles_through_rest(
    fake: FakeDiscord, commands: CommandSet, metrics: Metrics
) -> None:
    """Role ids in a reply are added to the invoking member with a REST call."""
    async with serving(fake, commands, metrics):
        await fake.wait_commands_synced()
        vip = fake.send_interaction(fake.slash_command("vip", user_id=51))
        await fake.wait_callbacks(vip)
        grants = await fake.wait_for(lambda: fake.role_grants or None, "role grant")
    assert grants == [(GUILD_ID, 51, VIP_ROLE_ID)]


async def test_stray_asyncio_error_is_counted_and_survived(
    fake: FakeDiscord, commands: CommandSet, metrics: Metrics
) -> None:
    """An asyncio task that dies inside the library is logged and counted, and the
    transport keeps serving."""
    async with serving(fake, commands, metrics):
        await fake.wait_commands_synced()
        fake.send_dispatch("MESSAGE_CREATE", {"id": "1"})
        await fake.wait_for(
            lambda: sample(metrics, "croupier_asyncio_task_errors_total") or None, "stray error"
        )
        balance = fake.send_interaction(fake.slash_command("balance"))
        await fake.wait_callbacks(balance)


async def test_gateway_latency_is_measured(
    fake: FakeDiscord, commands: CommandSet, metrics: Metrics
) -> None:
    """Heartbeats are acknowledged and their latency lands in the gauge."""
    async with serving(fake, commands, metrics):
        latency = await fake.wait_for(
            lambda: sample(metrics, "croupier_discord_gateway_latency_seconds") or None,
            "latency measurement",
        )
    assert fake.heartbeats >= 1
    assert 0 < latency < 1


async def test_cancelling_lets_in_flight_interactions_answer(
    fake: FakeDiscord,
    commands: CommandSet,
    bank: ToyBank,
    metrics: Metrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Cancelling the transport waits for a running handler to answer, then stops."""
    caplog.set_level(logging.INFO, logger="bot.discord_client")
    base = Route.BASE

    async def release_once_draining() -> None:
        await fake.wait_for(
            lambda: any("waiting up to" in r.getMessage() for r in caplog.records) or None,
            "drain",
        )
        bank.slow_release.set()

    with trio.fail_after(30):
        async with trio.open_nursery() as outside, serving(fake, commands, metrics) as running:
            await fake.wait_commands_synced()
            slow = fake.send_interaction(fake.slash_command("slow"))
            await bank.slow_started.wait()
            # The release comes from outside the cancelled scope, once the transport is
            # draining, so the handler only answers if the drain kept it alive.
            outside.start_soon(release_once_draining)
            running.scope.cancel()
    [callback] = fake.callbacks(slow)
    assert embed(callback.data)["title"] == "Done"
    assert running.connections == [True, False]
    assert sample(metrics, "croupier_discord_connected") == 0
    assert base == Route.BASE


async def test_stop_event_drains_within_its_bound(
    fake: FakeDiscord, commands: CommandSet, bank: ToyBank, metrics: Metrics
) -> None:
    """Setting ``stop`` ends run_discord normally; a handler that outlives the drain bound
    is cancelled without an answer."""
    stop = trio.Event()
    with trio.fail_after(30):
        async with serving(fake, commands, metrics, stop=stop, drain_seconds=0.2) as running:
            await fake.wait_commands_synced()
            slow = fake.send_interaction(fake.slash_command("slow"))
            await bank.slow_started.wait()
            stop.set()
            await fake.wait_for(
                lambda: True if running.connections[-1] is False else None, "disconnection"
            )
    assert bank.seen == [slow]
    assert fake.callbacks(slow) == []


async def test_unreachable_api_is_an_error(commands: CommandSet, metrics: Metrics) -> None:
    """A transport that cannot reach the REST API raises instead of hanging."""
    with trio.fail_after(30), pytest.raises(OSError):
        await run_discord(
            commands, token="t", api_url="http://127.0.0.1:9/api/v10", metrics=metrics
        )


async def test_fake_discord_speaks_exact_json_and_records_unknown_routes(
    fake: FakeDiscord,
) -> None:
    """The fake answers with the exact JSON content type and 404s, records, unknown routes."""

    def get(path: str) -> tuple[int, str, Any]:
        try:
            with urllib.request.urlopen(fake.api_url + path, timeout=10) as response:
                return response.status, response.headers["Content-Type"], json.load(response)
        except urllib.error.HTTPError as err:
            return err.code, err.headers["Content-Type"], json.load(err)

    me = await trio.to_thread.run_sync(get, "/users/@me")
    missing = await trio.to_thread.run_sync(get, "/channels/5/messages")
    assert me[:2] == (200, "application/json") and me[2]["verified"] is True
    assert missing[:2] == (404, "application/json")
    assert fake.unknown_routes == [("GET", "/channels/5/messages")]


async def test_an_answer_is_one_callback_that_mentions_nobody(
    fake: FakeDiscord, commands: CommandSet, metrics: Metrics
) -> None:
    """A quick command is answered by its callback alone (no read of ``@original``), and
    the message says it may mention nobody, so stored text cannot ping anyone."""
    async with serving(fake, commands, metrics):
        await fake.wait_commands_synced()
        pay = fake.send_interaction(fake.slash_command("pay", {"user": 43, "amount": 3}))
        await fake.wait_callbacks(pay)
        await trio.sleep(0.2)
    token = f"token-{pay}"
    about = [(r.method, r.path.split(token)[-1]) for r in fake.requests if token in r.path]
    assert about == [("POST", "/callback")]
    [callback] = fake.callbacks(pay)
    assert callback.data["allowed_mentions"] == {"parse": []}


async def test_unknown_command_and_button_are_answered(
    fake: FakeDiscord, commands: CommandSet, metrics: Metrics
) -> None:
    """A stale command and a button no route knows get an ephemeral answer, not silence."""
    async with serving(fake, commands, metrics):
        await fake.wait_commands_synced()
        game = fake.send_interaction(fake.slash_command("game"))
        await fake.wait_callbacks(game)
        message = fake.original_message(game)
        assert message is not None
        stale = fake.send_interaction(fake.unknown_command("retired"))
        button = fake.send_interaction(fake.button_press("lottery:1:draw", message=message))
        answers = [(await fake.wait_callbacks(i))[0] for i in (stale, button)]
    for answer in answers:
        assert answer.accepted and answer.type == 4
        assert answer.data["flags"] == _EPHEMERAL
        assert embed(answer.data)["title"] == "That did not work"


async def test_an_interaction_too_old_to_acknowledge_runs_nothing(
    fake: FakeDiscord, commands: CommandSet, bank: ToyBank, metrics: Metrics
) -> None:
    """An interaction whose deadline passed before it could be acknowledged moves no
    money, and is counted as unanswered."""
    old = ((int((time.time() - 5) * 1000) - _DISCORD_EPOCH_MS) << 22) | 1
    async with serving(fake, commands, metrics):
        await fake.wait_commands_synced()
        fake.send_interaction(
            fake.slash_command("pay", {"user": 43, "amount": 5}, interaction_id=old)
        )
        await fake.wait_for(
            lambda: sample(metrics, "croupier_discord_unanswered_total", reason="expired") or None,
            "the count of the expired interaction",
        )
    assert bank.seen == [] and bank.balance(42) == 100
    assert fake.callbacks(old) == []


async def test_overload_answers_busy_before_anything_moves(
    fake: FakeDiscord, commands: CommandSet, bank: ToyBank, metrics: Metrics
) -> None:
    """Past the in-flight bound an interaction is answered "busy" at once and its command
    does not run."""
    async with serving(fake, commands, metrics, in_flight_max=1):
        await fake.wait_commands_synced()
        slow = fake.send_interaction(fake.slash_command("slow"))
        await bank.slow_started.wait()
        pay = fake.send_interaction(fake.slash_command("pay", {"user": 43, "amount": 5}))
        [busy] = await fake.wait_callbacks(pay)
        bank.slow_release.set()
        await fake.wait_callbacks(slow)
    assert busy.data["flags"] == _EPHEMERAL
    assert embed(busy.data)["title"] == "Busy, try again"
    assert bank.seen == [slow] and bank.balance(42) == 100


async def test_a_clean_shutdown_logs_no_error(
    fake: FakeDiscord,
    commands: CommandSet,
    metrics: Metrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Stopping the transport closes the gateway without a stray error or reconnect."""
    caplog.set_level(logging.INFO)
    for _ in range(3):
        async with serving(fake, commands, metrics):
            await fake.wait_commands_synced()
            balance = fake.send_interaction(fake.slash_command("balance"))
            await fake.wait_callbacks(balance)
    await trio.sleep(0.3)
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == []
    assert not any("reconnect" in r.getMessage().lower() for r in caplog.records)
    assert sample(metrics, "croupier_asyncio_task_errors_total") == 0


async def test_a_failed_edit_after_the_command_is_followed_up_and_counted(
    fake: FakeDiscord, commands: CommandSet, bank: ToyBank, metrics: Metrics
) -> None:
    """When the edit that should answer a deferred command is refused, the command has
    taken effect: the failure is counted and the answer arrives as a follow-up."""
    fake.rate_limit(r"/webhooks/.*/messages/@original", method="PATCH", retry_after=10_000)
    async with serving(fake, commands, metrics, defer_after_seconds=0.05):
        await fake.wait_commands_synced()
        slow = fake.send_interaction(fake.slash_command("slow"))
        [deferral] = await fake.wait_callbacks(slow)
        bank.slow_release.set()
        [followup] = await fake.wait_for(lambda: fake.followups(slow) or None, "follow-up")
    assert deferral.type == 5
    assert embed(followup)["title"] == "Done"
    assert sample(metrics, "croupier_discord_unanswered_total", reason="rate_limited") == 1


async def test_interactions_that_ran_nothing_are_all_counted_but_few_logged(
    fake: FakeDiscord,
    commands: CommandSet,
    bank: ToyBank,
    metrics: Metrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Under overload a line per interaction that ran nothing would cost the CPU the
    others need: each is counted, the log gets a few a second."""
    old = ((int((time.time() - 5) * 1000) - _DISCORD_EPOCH_MS) << 22) | 1
    burst = 40
    async with serving(fake, commands, metrics):
        await fake.wait_commands_synced()
        fake.send_interactions(
            [fake.slash_command("balance", interaction_id=old + n) for n in range(burst)]
        )
        await fake.wait_for(
            lambda: (
                sample(metrics, "croupier_discord_unanswered_total", reason="expired") >= burst
                or None
            ),
            "the count of every expired interaction",
        )
    lines = [r for r in caplog.records if "could not be acknowledged" in r.getMessage()]
    assert 1 <= len(lines) < burst / 2
    assert bank.seen == []


def test_every_reason_an_answer_can_fail_for_is_a_counted_label(metrics: Metrics) -> None:
    """The reasons the answer path names are the metric's label values, each at 0 from
    the start."""
    assert set(get_args(Reason)) == set(DISCORD_UNANSWERED_REASONS)
    for reason in DISCORD_UNANSWERED_REASONS:
        value = metrics.registry.get_sample_value(
            "croupier_discord_unanswered_total", {"reason": reason}
        )
        assert value == 0
