"""The gateway transport under load and against Discord's limits: a burst of a thousand
interactions, rate limits on the REST routes, and shards."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from bot import CommandSet
from limits import RateLimit
from metrics import Metrics
from tests.conftest import sample
from tests.fake_discord import FakeDiscord
from tests.fake_discord.process import FakeDiscordProcess
from tests.support.discord import embed, serving
from tests.toy_commands import ToyBank

_burst_interactions = 1000
_members = 50
_first_member = 1000
_retry_after_seconds = 0.3
# Past this load average per core the machine, not the transport, sets the burst's pace.
_oversubscribed_load_per_core = 1.5


@pytest.fixture
def remote_fake() -> Iterator[FakeDiscordProcess]:
    # Discord's own heartbeat interval, so that a client busy with the burst is not taken
    # for a dead connection; the fake in its own process, as Discord is.
    with FakeDiscordProcess(heartbeat_interval_ms=41_250) as running:
        yield running


async def test_a_burst_of_a_thousand_is_acknowledged_in_time(
    remote_fake: FakeDiscordProcess, metrics: Metrics
) -> None:
    """A thousand interactions at once from fifty members are all acknowledged within
    Discord's 3 s, each with one request, and every payment is answered with its result."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > _oversubscribed_load_per_core * cores:
        # The burst needs about 1.5 s of one core for the client and 0.8 s for the fake;
        # on a machine this busy with other work the figure is the machine's, not ours.
        pytest.skip(f"load average {load:.1f} on {cores} cores: too busy to time a burst")
    bank = ToyBank()
    commands = bank.command_set(metrics, rate_limit=RateLimit(burst_commands=_burst_interactions))
    fake = remote_fake
    async with serving(fake, commands, metrics):
        await fake.wait_commands_synced()
        calls = []
        for n in range(_burst_interactions):
            member = _first_member + n % _members
            if n % 2:
                calls.append(("balance", None, member))
            else:
                other = _first_member + (n + 1) % _members
                calls.append(("pay", {"user": other, "amount": 1}, member))
        before = len(fake.requests)
        ids = fake.send_commands(calls)
        await fake.wait_for(
            lambda: True if fake.unacknowledged() == 0 else None,
            "an acknowledgement of every interaction",
            timeout=20,
            interval=0.1,
        )
        pays = ids[::2]
        first = {c.interaction_id: c for c in fake.all_callbacks if c.accepted}
        deferred = [i for i in pays if first[i].type == 5]
        edited = await fake.wait_for(
            lambda: (
                found
                if all(found := [fake.original_message(i) or {} for i in deferred])
                and all(m.get("embeds") for m in found)
                else None
            ),
            "the answer of every deferred payment",
            timeout=20,
            interval=0.1,
        )
        requests = len(fake.requests) - before
    acks = fake.acknowledgements()
    assert max(acks.values()) <= 3.0  # type: ignore[type-var]
    answers = [embed(first[i].data) for i in pays if i not in deferred] + [embed(m) for m in edited]
    assert len(answers) == len(pays)
    assert all(answer["title"] == "Paid" for answer in answers)
    assert bank.applied == set(pays)
    assert sum(bank.balances.values()) == _members * 100
    # One callback each, plus an edit for any that had to be deferred.
    deferrals = sum(1 for c in first.values() if c.type == 5)
    assert requests == _burst_interactions + deferrals


@pytest.mark.parametrize("is_global", [False, True])
async def test_a_429_on_a_rest_route_is_waited_out(
    commands: CommandSet, metrics: Metrics, is_global: bool
) -> None:
    """A 429 on the command sync (a route bound by the bot's limits) is retried only after
    its retry_after, whether it is the route's limit or the global one."""
    with FakeDiscord() as fake:
        fake.rate_limit(
            r"/applications/[0-9]+/commands",
            method="PUT",
            retry_after=_retry_after_seconds,
            is_global=is_global,
        )
        async with serving(fake, commands, metrics):
            await fake.wait_commands_synced()
        puts = [r for r in fake.requests if r.method == "PUT" and r.path.endswith("/commands")]
    assert [r.status for r in puts] == [429, 200]
    assert puts[1].at - puts[0].at >= _retry_after_seconds


async def test_a_429_on_an_answer_is_waited_out_within_the_deadline(
    commands: CommandSet, metrics: Metrics
) -> None:
    """An interaction callback answered 429 is sent again after its retry_after, still
    in time, and counted nowhere as unanswered."""
    with FakeDiscord() as fake:
        async with serving(fake, commands, metrics):
            await fake.wait_commands_synced()
            fake.rate_limit(r"/interactions/.*/callback", retry_after=_retry_after_seconds)
            balance = fake.send_interaction(fake.slash_command("balance"))
            [answer] = await fake.wait_callbacks(balance)
        tries = [r for r in fake.requests if r.path.endswith("/callback")]
    assert answer.accepted and embed(answer.data)["title"] == "Balance"
    assert [r.status for r in tries] == [429, 204]
    assert tries[1].at - tries[0].at >= _retry_after_seconds
    assert sample(metrics, "croupier_discord_unanswered_total", reason="rate_limited") == 0


@pytest.fixture
def commands(metrics: Metrics) -> CommandSet:
    return ToyBank().command_set(metrics)
