"""Running the Discord transport against a fake Discord for the length of a block."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from bot import CommandSet
from bot.discord_client import run_discord
from metrics import Metrics
from tests.fake_discord import FakeDiscord
from tests.fake_discord.process import FakeDiscordProcess


@dataclass
class Serving:
    scope: trio.CancelScope
    connections: list[bool] = field(default_factory=list)


@asynccontextmanager
async def serving(
    fake: FakeDiscord | FakeDiscordProcess,
    commands: CommandSet,
    metrics: Metrics,
    **kwargs: Any,
) -> AsyncIterator[Serving]:
    """Run the transport against ``fake`` until the block ends, connected and synced."""
    connected = trio.Event()
    with trio.CancelScope() as scope:
        serving = Serving(scope)

        def on_connected(flag: bool) -> None:
            serving.connections.append(flag)
            if flag:
                connected.set()

        run = partial(
            run_discord,
            commands,
            token="fake-token",
            api_url=fake.api_url,
            metrics=metrics,
            on_connected=on_connected,
            **kwargs,
        )
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                await nursery.start(run)
                await connected.wait()
                yield serving
                scope.cancel()


def embed(message: Mapping[str, Any]) -> dict[str, Any]:
    """The one embed of a message or of a callback's message data."""
    [only] = message["embeds"]
    return dict(only)
