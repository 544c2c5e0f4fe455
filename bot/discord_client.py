"""The Discord transport: interactions.py 5.16 run inside trio through trio-asyncio.

``run_discord`` opens an asyncio loop on top of trio and connects one process's shards to
the gateway. Every INTERACTION_CREATE is taken straight from the gateway (the library's
own interaction dispatch, command lookup and context objects are bypassed) and handled on
the asyncio side: only the command crosses into trio, to run through the ``CommandSet``,
and the answer goes out on the interaction REST path of ``bot.discord_answers``, which
no global lock holds back:

    gateway (asyncio) -> raw interaction -> trio: CommandSet -> asyncio: callback POST

Every interaction is answered while the server is up. Its age is known from its snowflake
and its arrival; a command still running when the interaction is ``defer_after_seconds``
old is acknowledged first (a deferred answer) and answered after, and an interaction that
arrives already that old is deferred before it runs. Past ``in_flight_max`` interactions
in flight, or while shutting down, an interaction is answered at once with an ephemeral
"busy, try again" and runs nothing. An interaction that cannot even be acknowledged in
time runs nothing either, so no money moves without an answer. An answer that fails after
the command took effect is logged with the interaction id and what the command answered,
counted in ``croupier_discord_unanswered_total{reason}``, and sent as a follow-up when the
interaction was acknowledged and its token still lives.

Commands are registered over REST, one ``PUT`` of the whole command set, before the
gateway connects, so no interaction is dropped for arriving before a sync.

Known traps of interactions.py under trio-asyncio, and what this module does about them:

- ``Client.stop()`` can spin forever, so it is never called: shutdown lets in-flight
  interactions finish, closes each shard's gateway the library's way (code 1000, so no
  receive task is left trying to reconnect), then cancels the trio scope around
  ``Client.astart``.
- One stray asyncio task error would end the whole loop (trio-asyncio's default exception
  handler re-raises), so a handler that logs and counts them is installed.
- Listeners are only collected from ``__main__`` or from an ``Extension``, so they live in
  one ``Extension``.
- The REST base URL is the class constant ``Route.BASE``; it is set for the run and put
  back afterwards. The gateway URL comes from ``GET /gateway``.
- ``AutoShardedClient.astart`` waits for every shard to be ready after starting only the
  first ``max_concurrency`` bucket, so it hangs with more buckets than one; the client
  here starts the shards itself, in waves of one shard per bucket.

This module wires the transport together and runs it; answering each interaction is
``bot.discord_handling``, the library's client and its shards ``bot.discord_sharding``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import interactions
import trio
import trio_asyncio
from interactions.api.http.route import Route

from bot.discord_handling import InteractionHandling, Policy
from bot.discord_sharding import ConnectionListeners, ShardedClient, ShardPlan, shard_up
from bot.dispatch import CommandSet
from bot.http import payload
from limits import (
    defer_after_seconds_default,
    drain_seconds_default,
    gateway_close_seconds_max,
    gateway_latency_poll_seconds,
    identify_interval_seconds_default,
    interaction_deadline_seconds_default,
    interactions_in_flight_max_default,
)
from metrics import Metrics

logger = logging.getLogger(__name__)

DISCORD_API_URL = "https://discord.com/api/v10"


class GatewayClosed(RuntimeError):
    """The client stopped by itself: the gateway connection ended for good."""


def _ignore_connected(connected: bool) -> None:
    """The default ``on_connected``: nobody is listening."""


async def run_discord(
    commands: CommandSet,
    *,
    token: str,
    api_url: str = DISCORD_API_URL,
    metrics: Metrics,
    on_connected: Callable[[bool], None] = _ignore_connected,
    on_ban_removed: Callable[[int, int], Awaitable[object]] | None = None,
    stop: trio.Event | None = None,
    shards: int | None = None,
    shard_ids: Sequence[int] | None = None,
    drain_seconds: float = drain_seconds_default,
    defer_after_seconds: float = defer_after_seconds_default,
    deadline_seconds: float = interaction_deadline_seconds_default,
    in_flight_max: int = interactions_in_flight_max_default,
    identify_interval_seconds: float = identify_interval_seconds_default,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``commands`` on Discord until cancelled or until ``stop`` is set.

    Call it from inside ``trio.run``, once per process (the REST base URL is a class
    constant of the library); it opens its own trio-asyncio loop. ``shards`` is the total
    shard count (None: the count Discord recommends in ``GET /gateway/bot``) and
    ``shard_ids`` the shards this process runs (None: all). It reports ready once the
    client is launched. ``on_connected(True)`` is called (in the trio thread) once every
    shard is ready, ``on_connected(False)`` when one is lost or the transport stops;
    ``metrics.discord_connected`` follows it. ``on_ban_removed(guild_id, user_id)`` is
    called (in trio) for every ban lifted in Discord (``GUILD_BAN_REMOVE``, which the
    ``GUILD_MODERATION`` intent asked for then brings). Shutting down (cancellation or ``stop``)
    first answers new interactions "busy" and waits up to ``drain_seconds`` for the ones
    being handled to answer, then cancels the client. Raises ``GatewayClosed`` if the
    client gives up by itself, and the client's own error (a bad token, say) if it cannot
    start.
    """
    assert 0 < defer_after_seconds < deadline_seconds, "a deferral must come before the deadline"
    assert in_flight_max >= 1
    previous_base = Route.BASE
    Route.BASE = api_url.rstrip("/")
    try:
        async with trio_asyncio.open_loop() as loop:
            loop.set_exception_handler(_stray_error_handler(metrics))
            transport = Transport(
                commands,
                metrics,
                on_connected,
                on_ban_removed,
                loop,
                Policy(defer_after_seconds, deadline_seconds, in_flight_max),
                ShardPlan(shards, tuple(shard_ids) if shard_ids else None),
                identify_interval_seconds,
            )
            await transport.serve(token, stop, drain_seconds, task_status)
    finally:
        Route.BASE = previous_base
    # Raised out here rather than inside the loop, whose nurseries would wrap it in
    # exception groups.
    if transport.failure is not None:
        raise transport.failure


def _stray_error_handler(
    metrics: Metrics,
) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        metrics.asyncio_task_errors.inc()
        logger.error(
            "stray asyncio error: %s", context.get("message"), exc_info=context.get("exception")
        )

    return handle


class Transport(InteractionHandling):
    """The state of one run: the client, in-flight interactions and the connection."""

    def __init__(
        self,
        commands: CommandSet,
        metrics: Metrics,
        on_connected: Callable[[bool], None],
        on_ban_removed: Callable[[int, int], Awaitable[object]] | None,
        loop: asyncio.AbstractEventLoop,
        policy: Policy,
        shards: ShardPlan,
        identify_interval_seconds: float,
    ) -> None:
        super().__init__(commands, metrics, loop, policy)
        self._on_connected = on_connected
        self._on_ban_removed = on_ban_removed
        self.connected = False
        self.ready = False
        self.stopping = False
        # Why the client stopped by itself, if it did.
        self.failure: Exception | None = None
        sharding: dict[str, Any] = {}
        if shards.count is not None:
            sharding["total_shards"] = shards.count
        if shards.ids is not None:
            sharding["shard_ids"] = list(shards.ids)
        self.client = ShardedClient(
            self,
            identify_interval_seconds,
            intents=interactions.Intents.GUILDS
            | (interactions.Intents.GUILD_MODERATION if on_ban_removed else 0),
            sync_interactions=False,
            delete_unused_application_cmds=False,
            send_command_tracebacks=False,
            disable_dm_commands=True,
            **sharding,
        )
        ConnectionListeners(self.client, self)

    async def serve(
        self,
        token: str,
        stop: trio.Event | None,
        drain_seconds: float,
        task_status: trio.TaskStatus[None],
    ) -> None:
        finished = trio.Event()
        # The client runs in a scope shielded from outside cancellation, so that on
        # shutdown it keeps serving the interactions in flight until it is cancelled here.
        client_scope = trio.CancelScope(shield=True)

        async def run_client() -> None:
            try:
                with client_scope:
                    await trio_asyncio.aio_as_trio(self.client.astart, loop=self.loop)(token)
                    if not self.stopping:
                        self.failure = GatewayClosed("the Discord gateway connection ended")
            except Exception as err:
                self.failure = err
            finally:
                # The client's HTTP session is closed here rather than by Client.stop(),
                # which is never called; a reconnect then does not leak one per attempt.
                with trio.CancelScope(shield=True):
                    await trio_asyncio.aio_as_trio(self.client.http.close, loop=self.loop)()
                finished.set()

        # Commands run in a nursery shielded the same way, so that a shutdown lets the
        # ones in flight finish until the drain is over.
        commands_scope = trio.CancelScope(shield=True)

        async def run_commands(task_status: trio.TaskStatus[None]) -> None:
            with commands_scope:
                async with trio.open_nursery() as commands:
                    self._nursery = commands
                    task_status.started()
                    await trio.sleep_forever()

        await trio_asyncio.aio_as_trio(self.answers.open, loop=self.loop)()
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(run_commands)
                nursery.start_soon(run_client)
                nursery.start_soon(self._poll_latency)
                task_status.started()
                try:
                    await _first_of(finished, stop)
                finally:
                    with trio.CancelScope(shield=True):
                        await self._drain(drain_seconds)
                        commands_scope.cancel()
                        await self._close_gateways(finished)
                        client_scope.cancel()
                        await finished.wait()
                    nursery.cancel_scope.cancel()
        finally:
            self.set_connected(False)
            with trio.CancelScope(shield=True):
                await trio_asyncio.aio_as_trio(self.answers.close, loop=self.loop)()

    async def _drain(self, drain_seconds: float) -> None:
        self.accepting = False
        logger.info(
            "stopping: waiting up to %.1f s for %d interactions", drain_seconds, self.in_flight
        )
        with trio.move_on_after(drain_seconds):
            while self.in_flight:
                await self._idle.wait()
        if self.in_flight:
            logger.warning(
                "%d interactions still running after %.1f s; cancelling them",
                self.in_flight,
                drain_seconds,
            )

    async def _close_gateways(self, finished: trio.Event) -> None:
        """Close every shard's connection the way the library means it to (code 1000,
        no reconnect), and give the client a moment to end by itself: cancelling it
        mid-connection leaves tasks that try to reconnect on a closed session."""
        self.stopping = True

        async def close() -> None:
            for state in self.client.shards:
                gateway: Any = state.gateway
                if gateway is not None:
                    gateway.close()

        await trio_asyncio.aio_as_trio(close, loop=self.loop)()
        with trio.move_on_after(gateway_close_seconds_max):
            await finished.wait()

    async def _poll_latency(self) -> None:
        while True:
            await trio.sleep(gateway_latency_poll_seconds)
            if self.connected:
                # The gateway object goes away while the client disconnects.
                with contextlib.suppress(AttributeError):
                    latency = self.client.latency
                    if math.isfinite(latency):
                        self.metrics.discord_latency.set(latency)

    def refresh_connected(self) -> None:
        """Connected means: the client was ready once and every shard is up now."""
        states = self.client.shards
        self.set_connected(self.ready and bool(states) and all(shard_up(s) for s in states))

    def set_connected(self, connected: bool) -> None:
        if connected == self.connected:
            return
        self.connected = connected
        self.metrics.discord_connected.set(1 if connected else 0)
        logger.info("Discord %s", "connected" if connected else "disconnected")
        self._on_connected(connected)

    def ban_removed(self, guild_id: int, user_id: int) -> None:
        """A ban was lifted in Discord: tell the scheduler, in trio (asyncio callbacks
        run inside trio here, so the task is started directly)."""
        if self._on_ban_removed is None or self._nursery is None:
            return
        self._nursery.start_soon(self._report_ban_removed, guild_id, user_id)

    async def _report_ban_removed(self, guild_id: int, user_id: int) -> None:
        assert self._on_ban_removed is not None
        try:
            await self._on_ban_removed(guild_id, user_id)
        except Exception:
            # The pending unban stays; it lifts a ban that is already gone, which Discord
            # answers Unknown Ban, and that ends the timer.
            logger.exception("cancelling the tempban of %d in guild %d failed", user_id, guild_id)

    async def sync_commands(self) -> None:
        """Register every command, in one ``PUT`` that also removes retired ones."""
        definitions = [payload.command_definition(c) for c in self.commands.commands]
        await self.client.http.overwrite_application_commands(self.client.app.id, definitions, 0)
        logger.info("registered %d commands", len(definitions))


async def _first_of(finished: trio.Event, stop: trio.Event | None) -> None:
    if stop is None:
        await finished.wait()
        return
    async with trio.open_nursery() as nursery:
        for event in (finished, stop):
            nursery.start_soon(_wait_then_cancel, event, nursery.cancel_scope)


async def _wait_then_cancel(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
