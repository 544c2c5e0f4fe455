"""Measure the gateway transport under a burst: N interactions sent at once through the
real interactions.py client against the fake Discord.

    .venv/bin/python -m tests.support.discord_burst 200 1000

For each burst size it prints how many interactions were acknowledged within Discord's
3 s, how many payments took effect without their member seeing an answer, and the REST
requests the client made per interaction. Half of each burst are payments (money moves),
half balance reads, from 50 members.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass

import trio

from bot.discord_client import run_discord
from limits import RateLimit
from metrics import new_metrics
from tests.fake_discord.process import FakeDiscordProcess
from tests.toy_commands import ToyBank

_members = 50
_first_member = 1000


@dataclass(frozen=True)
class BurstFigures:
    interactions: int
    acked_within_3s: int
    paid_unanswered: int
    rest_requests_per_interaction: float
    seconds_to_last_ack: float


async def measure_burst(count: int) -> BurstFigures:
    """Send ``count`` interactions at once and measure how the transport answers them."""
    bank = ToyBank()
    metrics = new_metrics()
    # The rate limit is not what is measured here, so it is out of the way.
    commands = bank.command_set(metrics, rate_limit=RateLimit(burst_commands=count))
    # Discord's own heartbeat interval: the fake's quick default would have the client
    # declare the connection dead while it is busy with the burst. The fake runs in a
    # process of its own, as Discord would, so that its CPU is not counted as the client's.
    with FakeDiscordProcess(heartbeat_interval_ms=41_250) as fake:
        async with trio.open_nursery() as nursery:
            connected = trio.Event()
            nursery.start_soon(
                lambda: run_discord(
                    commands,
                    token="bench",
                    api_url=fake.api_url,
                    metrics=metrics,
                    on_connected=lambda up: connected.set() if up else None,
                )
            )
            with trio.fail_after(30):
                await connected.wait()
                await fake.wait_commands_synced()
            before = len(fake.requests)
            calls = []
            for n in range(count):
                member = _first_member + n % _members
                if n % 2:
                    calls.append(("balance", None, member))
                else:
                    other = _first_member + (n + 1) % _members
                    calls.append(("pay", {"user": other, "amount": 1}, member))
            ids = fake.send_commands(calls)
            # Wait until every interaction is answered or can no longer be.
            with trio.move_on_after(fake.deadline_seconds + 5):
                while fake.unacknowledged():
                    await trio.sleep(0.05)
            await trio.sleep(1)
            acks = fake.acknowledgements()
            requests = len(fake.requests) - before
            last = max((v for v in acks.values() if v is not None), default=0.0)
            answered = {c.interaction_id for c in fake.all_callbacks if c.accepted}
            paid_unanswered = sum(1 for i in ids if i in bank.applied and i not in answered)
            nursery.cancel_scope.cancel()
    return BurstFigures(
        interactions=count,
        acked_within_3s=sum(1 for v in acks.values() if v is not None and v <= 3.0),
        paid_unanswered=paid_unanswered,
        rest_requests_per_interaction=round(requests / count, 2),
        seconds_to_last_ack=round(last, 3),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[200, 1000])
    args = parser.parse_args()
    for size in args.sizes:
        figures = trio.run(measure_burst, size)
        print(json.dumps(asdict(figures)))


if __name__ == "__main__":
    main()
