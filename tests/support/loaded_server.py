"""The real Croupier server under a small, steady load, for the real-Prometheus test.

It runs ``bot.server.serve`` exactly as ``croupier run`` does (configuration from the
``CROUPIER_*`` environment) but with no transport, and drives the same ``CommandSet`` the
transports use with a mix of commands from a handful of users: rewards, payments,
listings, every game (blackjack through its buttons), typed errors, and now and then a
burst that trips the rate limit. It stops on SIGTERM like the server, or by itself after a
lifetime bound in case its parent dies without stopping it.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Awaitable, Callable
from functools import partial

import trio

from bot import ButtonPress, CommandSet, Invocation, Reply, UserRef
from bot.config import load_config
from bot.server import Services, serve

TICK_SECONDS = 0.05
LIFETIME_SECONDS_MAX = 600.0
GUILD = 1
USERS = tuple(range(100, 108))

Invoke = Callable[..., Awaitable[Reply]]


async def drive(services: Services) -> None:
    """Send one command per tick, forever."""
    commands = services.commands
    ids = itertools.count(1_000_000)
    rng = random.Random(5)

    async def invoke(name: str, actor: int, **options: object) -> Reply:
        inv = Invocation(name, next(ids), actor, GUILD, can_manage_guild=True, options=options)
        return await commands.invoke(inv)

    for user in USERS:
        await invoke("money-add", user, user=UserRef(user), amount=5_000, reason="load test")
    await invoke("economy-config", USERS[0], setting="game_cooldown_seconds", value="0")
    while True:
        user, other = rng.sample(USERS, 2)
        choice = rng.randrange(10)
        if choice == 0:
            await invoke("pay", user, user=UserRef(other), amount=rng.randint(1, 20))
        elif choice == 1:
            await invoke("daily", user)
        elif choice == 2:
            await invoke("coinflip", user, stake=5, choice="heads")
        elif choice == 3:
            await invoke("slots", user, stake=5)
        elif choice == 4:
            await invoke("roulette", user, stake=5, bet="red")
        elif choice == 5:
            await invoke("dice", user, stake=5, bet="over")
        elif choice == 6:
            await play_blackjack(commands, user, ids, invoke)
        elif choice == 7:
            await invoke("leaderboard", user)
            await invoke("balance", user)
        elif choice == 8:
            # A typed error (not enough money) is normal use and counts as outcome=error.
            await invoke("pay", user, user=UserRef(other), amount=10**12)
        else:
            for _ in range(15):
                await invoke("balance", user)
        await trio.sleep(TICK_SECONDS)


async def play_blackjack(
    commands: CommandSet, user: int, ids: itertools.count[int], invoke: Invoke
) -> None:
    """Start a round and press Stand on each hand until it is settled."""
    reply = await invoke("blackjack", user, stake=5)
    for _ in range(10):
        stand = [b for b in reply.buttons if b.custom_id.endswith(":stand") and not b.disabled]
        if not stand:
            return
        reply = await commands.press(ButtonPress(stand[0].custom_id, next(ids), user, GUILD))


async def main() -> None:
    config = load_config()
    with trio.move_on_after(LIFETIME_SECONDS_MAX):
        async with trio.open_nursery() as nursery:
            services: Services = await nursery.start(partial(serve, config, transport="none"))
            nursery.start_soon(drive, services)


if __name__ == "__main__":
    trio.run(main)
