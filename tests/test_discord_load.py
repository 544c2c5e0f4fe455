"""The gateway transport under load and against Discord's limits: a burst of a thousand
interactions, rate limits on the REST routes, and shards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.dispatch import RateLimit
from metrics import Metrics
from tests.fake_discord.process import FakeDiscordProcess
from tests.support.discord import embed, serving
from tests.toy_commands import ToyBank

_burst_interactions = 1000
_members = 50
_first_member = 1000


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
