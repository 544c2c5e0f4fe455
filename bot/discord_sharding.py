"""Sharding: the library's client with its dispatch replaced, shards started in waves.

``ShardedClient`` is interactions.py's ``AutoShardedClient`` with the transport's own
interaction dispatch, the commands registered before the gateway connects, and the
shards started in waves of one shard per ``max_concurrency`` bucket (the library's own
start hangs with more buckets than one). ``ConnectionListeners`` tell the transport
when the shards come and go.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import interactions
from interactions.api.events.processors import Processor

if TYPE_CHECKING:
    from bot.discord_client import Transport


class ShardPlan:
    """Which shards this process runs: ``count`` None means Discord's recommendation."""

    def __init__(self, count: int | None, ids: tuple[int, ...] | None) -> None:
        assert count is None or count >= 1
        assert ids is None or (count is not None and all(0 <= i < count for i in ids))
        self.count = count
        self.ids = ids


class ShardedClient(interactions.AutoShardedClient):
    """interactions.py's sharded client with its interaction dispatch replaced by the
    transport's, the commands registered before the gateway, and shards started in waves
    that respect ``max_concurrency``."""

    def __init__(
        self, transport: Transport, identify_interval_seconds: float, **kwargs: Any
    ) -> None:
        self._croupier = transport
        self._identify_interval_seconds = identify_interval_seconds
        super().__init__(**kwargs)

    @Processor.define("raw_interaction_create")
    async def _dispatch_interaction(self, event: Any) -> None:
        await self._croupier.handle(event.data, time.monotonic())

    async def astart(self, token: str | None = None) -> None:
        await self.login(token)
        await self._croupier.sync_commands()
        tasks: list[asyncio.Task[None]] = []
        try:
            waves = _waves(self._connection_states, self.max_start_concurrency)
            for number, wave in enumerate(waves):
                if number:
                    # Discord allows one identify per bucket every 5 s, counted from the
                    # previous wave being in.
                    await asyncio.sleep(self._identify_interval_seconds)
                tasks.extend(asyncio.create_task(state.start()) for state in wave)
                await asyncio.gather(*(state._shard_ready.wait() for state in wave))
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()


def _waves(states: Sequence[Any], max_concurrency: int) -> list[list[Any]]:
    """The shards in identify waves: each wave holds at most one shard of each
    ``max_concurrency`` bucket (``shard_id % max_concurrency``), in shard order."""
    buckets: dict[int, list[Any]] = defaultdict(list)
    for state in sorted(states, key=lambda s: s.shard_id):
        buckets[state.shard_id % max(1, max_concurrency)].append(state)
    columns = [buckets[key] for key in sorted(buckets)]
    return [
        [state for state in wave if state is not None]
        for wave in itertools.zip_longest(*columns, fillvalue=None)
    ]


class ConnectionListeners(interactions.Extension):
    """The connection listeners."""

    def __init__(self, bot: interactions.Client, transport: Transport) -> None:
        self.transport = transport

    @interactions.listen(interactions.events.Ready)
    async def _on_ready(self, event: interactions.events.Ready) -> None:
        self.transport.ready = True
        self.transport.refresh_connected()

    @interactions.listen(interactions.events.Resume)
    async def _on_resume(self, event: interactions.events.Resume) -> None:
        self.transport.refresh_connected()

    @interactions.listen(interactions.events.ShardConnect)
    async def _on_shard_connect(self, event: interactions.events.ShardConnect) -> None:
        self.transport.refresh_connected()

    @interactions.listen(interactions.events.Disconnect)
    async def _on_disconnect(self, event: interactions.events.Disconnect) -> None:
        self.transport.set_connected(False)

    @interactions.listen(interactions.events.ShardDisconnect)
    async def _on_shard_disconnect(self, event: interactions.events.ShardDisconnect) -> None:
        self.transport.set_connected(False)

    @interactions.listen(interactions.events.BanRemove)
    async def _on_ban_remove(self, event: interactions.events.BanRemove) -> None:
        self.transport.ban_removed(int(event.guild_id), int(event.user.id))


def shard_up(state: Any) -> bool:
    # interactions.py keeps no public flag for a shard being identified and connected.
    return bool(state._shard_ready.is_set())
