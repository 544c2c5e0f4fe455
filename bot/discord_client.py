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
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import interactions
import trio
import trio_asyncio
from interactions.api.events.processors import Processor
from interactions.api.http.route import Route
from interactions.client.errors import Forbidden

from actors.errors import CroupierError, InvalidInput, RoleNotGrantable
from bot.discord_answers import AnswerFailed, InteractionAnswers
from bot.dispatch import ERROR_COLOR, CommandSet, error_reply
from bot.http import payload
from bot.http.payload import (
    CHANNEL_MESSAGE,
    DEFERRED_CHANNEL_MESSAGE,
    DEFERRED_UPDATE_MESSAGE,
    UPDATE_MESSAGE,
)
from bot.inputs import snowflake
from bot.model import Reply
from metrics import Metrics

logger = logging.getLogger(__name__)

DISCORD_API_URL = "https://discord.com/api/v10"

# Discord's figures: an interaction must be acknowledged within 3 s of its creation, and
# its token allows follow-ups and edits for 15 minutes.
interaction_deadline_seconds_default = 3.0
interaction_token_seconds = 15 * 60.0
# Discord lets one shard of each max_concurrency bucket identify every 5 s.
identify_interval_seconds_default = 5.0
# How long a shutdown waits for interactions already being handled before cancelling them.
drain_seconds_default = 10.0
# How old an interaction may get while its command runs before it is acknowledged
# ("thinking..."): the answer still needs a round trip within the 3 s.
defer_after_seconds_default = 1.5
# Interactions handled at once; past it an interaction is answered "busy" at once.
in_flight_max_default = 5000
_latency_poll_seconds = 1.0
_not_run_lines_per_second = 10
# How long a stopping client may take to close its gateway connections before it is
# cancelled.
_gateway_close_seconds = 2.0

_DISCORD_EPOCH_MS = 1_420_070_400_000
_ADMINISTRATOR = 1 << 3
_MANAGE_ROLES = 1 << 28
_MESSAGE_COMPONENT = 3
_AUTOCOMPLETE = 4
_AUTOCOMPLETE_RESULT = 8


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
    stop: trio.Event | None = None,
    shards: int | None = None,
    shard_ids: Sequence[int] | None = None,
    drain_seconds: float = drain_seconds_default,
    defer_after_seconds: float = defer_after_seconds_default,
    deadline_seconds: float = interaction_deadline_seconds_default,
    in_flight_max: int = in_flight_max_default,
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
    ``metrics.discord_connected`` follows it. Shutting down (cancellation or ``stop``)
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
            transport = _Transport(
                commands,
                metrics,
                on_connected,
                loop,
                _Policy(defer_after_seconds, deadline_seconds, in_flight_max),
                _ShardPlan(shards, tuple(shard_ids) if shard_ids else None),
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


class _Policy:
    """When to defer and when to refuse: the transport's time and load bounds."""

    def __init__(self, defer_after_seconds: float, deadline_seconds: float, in_flight_max: int):
        self.defer_after_seconds = defer_after_seconds
        self.deadline_seconds = deadline_seconds
        self.in_flight_max = in_flight_max


class _ShardPlan:
    """Which shards this process runs: ``count`` None means Discord's recommendation."""

    def __init__(self, count: int | None, ids: tuple[int, ...] | None) -> None:
        assert count is None or count >= 1
        assert ids is None or (count is not None and all(0 <= i < count for i in ids))
        self.count = count
        self.ids = ids


class _Interaction:
    """One interaction as the gateway delivered it, with the instant it was created
    (``time.monotonic()``, estimated from its snowflake and its arrival)."""

    def __init__(self, data: Mapping[str, Any], received: float) -> None:
        self.data = data
        self.id = snowflake(data.get("id"), "interaction id")
        self.token = str(data["token"])
        self.app_id = snowflake(data.get("application_id"), "application id")
        self.kind = int(data["type"])
        self.button = self.kind == _MESSAGE_COMPONENT
        member = data.get("member") or {}
        self.user_id = snowflake((member.get("user") or data.get("user") or {}).get("id"), "user")
        self.guild_id = snowflake(data["guild_id"], "guild id") if data.get("guild_id") else 0
        # The snowflake says when Discord created the interaction; on a machine whose
        # clock runs behind Discord's the arrival is the better bound.
        created_wall = ((self.id >> 22) + _DISCORD_EPOCH_MS) / 1000
        lag = max(0.0, time.time() - created_wall)
        self.created = received - lag

    def age(self) -> float:
        return time.monotonic() - self.created

    def what(self) -> str:
        payload = self.data.get("data") or {}
        if self.button:
            return f"button {payload.get('custom_id')!r}"
        return f"/{payload.get('name')}"


class _Transport:
    """The state of one run: the client, in-flight interactions and the connection."""

    def __init__(
        self,
        commands: CommandSet,
        metrics: Metrics,
        on_connected: Callable[[bool], None],
        loop: asyncio.AbstractEventLoop,
        policy: _Policy,
        shards: _ShardPlan,
        identify_interval_seconds: float,
    ) -> None:
        self.commands = commands
        self.metrics = metrics
        self.loop = loop
        self.policy = policy
        self._on_connected = on_connected
        self.connected = False
        self.ready = False
        self.accepting = True
        self.stopping = False
        self.in_flight = 0
        # Interactions that ran nothing are logged a few a second (they are all counted):
        # under overload, a line for each would cost the CPU the others need.
        self._not_run = _ThrottledLog(logger, _not_run_lines_per_second)
        # Where commands run, in trio; set while serving.
        self._nursery: trio.Nursery | None = None
        self._idle = trio.Event()
        # Why the client stopped by itself, if it did.
        self.failure: Exception | None = None
        self.answers = InteractionAnswers(Route.BASE, "DiscordBot (Croupier, 1.0)")
        sharding: dict[str, Any] = {}
        if shards.count is not None:
            sharding["total_shards"] = shards.count
        if shards.ids is not None:
            sharding["shard_ids"] = list(shards.ids)
        self.client = _Client(
            self,
            identify_interval_seconds,
            intents=interactions.Intents.GUILDS,
            sync_interactions=False,
            delete_unused_application_cmds=False,
            send_command_tracebacks=False,
            disable_dm_commands=True,
            **sharding,
        )
        _CroupierExtension(self.client, self)

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
        with trio.move_on_after(_gateway_close_seconds):
            await finished.wait()

    async def _poll_latency(self) -> None:
        while True:
            await trio.sleep(_latency_poll_seconds)
            if self.connected:
                # The gateway object goes away while the client disconnects.
                with contextlib.suppress(AttributeError):
                    latency = self.client.latency
                    if math.isfinite(latency):
                        self.metrics.discord_latency.set(latency)

    def refresh_connected(self) -> None:
        """Connected means: the client was ready once and every shard is up now."""
        states = self.client.shards
        self.set_connected(self.ready and bool(states) and all(_shard_up(s) for s in states))

    def set_connected(self, connected: bool) -> None:
        if connected == self.connected:
            return
        self.connected = connected
        self.metrics.discord_connected.set(1 if connected else 0)
        logger.info("Discord %s", "connected" if connected else "disconnected")
        self._on_connected(connected)

    async def sync_commands(self) -> None:
        """Register every command, in one ``PUT`` that also removes retired ones."""
        definitions = [payload.command_definition(c) for c in self.commands.commands]
        await self.client.http.overwrite_application_commands(self.client.app.id, definitions, 0)
        logger.info("registered %d commands", len(definitions))

    # Interactions. They are handled on the asyncio side, where the gateway delivers them
    # and the answers go out; only the command itself crosses into trio. One crossing per
    # interaction instead of one per request halved the transport's CPU per interaction.

    async def handle(self, data: Mapping[str, Any], received: float) -> None:
        try:
            interaction = _Interaction(data, received)
        except (KeyError, ValueError, TypeError, InvalidInput):
            logger.warning("an interaction without a usable id or token was ignored: %r", data)
            return
        if interaction.kind == _AUTOCOMPLETE:
            # No option offers autocompletion; an empty list is the complete answer.
            await self._acknowledge(interaction, {"type": _AUTOCOMPLETE_RESULT, "data": {}})
            return
        kind = "button" if interaction.button else "command"
        self.metrics.discord_interactions.labels(type=kind).inc()
        if not self.accepting or self.in_flight >= self.policy.in_flight_max:
            await self._refuse(interaction, restarting=not self.accepting)
            return
        self.in_flight += 1
        try:
            await self._serve(interaction)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()
                self._idle = trio.Event()

    async def _serve(self, interaction: _Interaction) -> None:
        try:
            run = self._runner(interaction)
        except CroupierError as err:
            await self._answer(interaction, error_reply(err), deferred=False)
            return
        if interaction.age() >= self.policy.defer_after_seconds:
            # Already too old to risk running first: acknowledge, and run only if that
            # worked, so nothing moves for a member who saw "This interaction failed".
            if not await self._defer(interaction):
                return
            reply, deferred = await run(), True
        else:
            reply, deferred = await self._run_deferring(interaction, run)
        await self._answer(interaction, reply, deferred=deferred)

    def _runner(self, interaction: _Interaction) -> Callable[[], Awaitable[Reply]]:
        """What running this interaction means (a call into trio); a typed error for a
        payload that does not make a request."""
        if interaction.button:
            press = payload.button_press(interaction.data)
            return lambda: self._in_trio(self.commands.press, press)
        name = (interaction.data.get("data") or {}).get("name")
        command = self.commands.command(name) if isinstance(name, str) else None
        inv = payload.invocation(interaction.data, command)
        inv = dataclasses.replace(inv, roles=_MemberRoles(self, interaction))
        return lambda: self._in_trio(self.commands.invoke, inv)

    def _in_trio(self, function: Callable[[Any], Awaitable[Reply]], request: Any) -> Any:
        """Run ``function(request)`` as a task of the transport's trio nursery and return
        an asyncio future of its reply. Asyncio callbacks run inside trio here, so the
        task is started directly: trio_asyncio.trio_as_aio measured four times dearer
        per call, a fifth of the transport's CPU under a burst."""
        future: asyncio.Future[Reply] = self.loop.create_future()

        async def run() -> None:
            try:
                reply = await function(request)
            except Exception as err:
                # The command layer answers every error with a reply, so this is a bug;
                # it fails this interaction (logged where it is awaited), not the nursery.
                future.set_exception(err)
                return
            except BaseException:
                # Cancelled, on shutdown: the waiting side is cancelled with it.
                future.cancel()
                raise
            if not future.done():
                future.set_result(reply)

        assert self._nursery is not None, "interactions are handled only while serving"
        self._nursery.start_soon(run)
        return future

    async def _run_deferring(
        self, interaction: _Interaction, run: Callable[[], Awaitable[Reply]]
    ) -> tuple[Reply, bool]:
        """Run the command; if it is still running when the interaction is
        ``defer_after_seconds`` old, acknowledge it meanwhile. Return the reply and
        whether the interaction was deferred."""
        deferral: list[asyncio.Task[bool]] = []

        def defer() -> None:
            deferral.append(asyncio.ensure_future(self._defer(interaction)))

        delay = max(0.0, self.policy.defer_after_seconds - interaction.age())
        timer = asyncio.get_running_loop().call_later(delay, defer)
        try:
            reply = await run()
        finally:
            timer.cancel()
        # A defer that is under way when the reply arrives is let finish, so that the
        # answer knows which of Discord's states the interaction is in.
        deferred = await deferral[0] if deferral else False
        return reply, deferred

    async def _defer(self, interaction: _Interaction) -> bool:
        kind = DEFERRED_UPDATE_MESSAGE if interaction.button else DEFERRED_CHANNEL_MESSAGE
        return await self._acknowledge(interaction, {"type": kind})

    async def _acknowledge(self, interaction: _Interaction, body: Mapping[str, Any]) -> bool:
        """Send an initial callback that runs nothing; False (logged, counted) if it
        failed."""
        try:
            await self.answers.callback(
                interaction.id,
                interaction.token,
                body,
                until=interaction.created + self.policy.deadline_seconds,
            )
        except AnswerFailed as failure:
            self._not_run.warning(
                "interaction %d (%s) could not be acknowledged and did not run: %s",
                interaction.id,
                interaction.what(),
                failure,
            )
            self.metrics.discord_unanswered.labels(reason=failure.reason).inc()
            return False
        return True

    async def _refuse(self, interaction: _Interaction, *, restarting: bool) -> None:
        why = "is restarting" if restarting else "is handling too many requests right now"
        reply = Reply(
            title="Busy, try again",
            description=f"Croupier {why}; nothing was done. Try again in a few seconds.",
            ephemeral=True,
            color=ERROR_COLOR,
            error_code="busy",
        )
        await self._acknowledge(
            interaction, {"type": CHANNEL_MESSAGE, "data": payload.message(reply)}
        )

    async def _answer(self, interaction: _Interaction, reply: Reply, *, deferred: bool) -> None:
        # By now the command has taken effect, so a failure to answer is logged, counted
        # and followed up where Discord still allows it, and the role grants still happen.
        try:
            await self._send(interaction, reply, deferred)
        except AnswerFailed as failure:
            self._unanswered(interaction, reply, failure, deferred)
            token_alive = interaction.age() < interaction_token_seconds
            if deferred and token_alive and failure.reason != "token_expired":
                await self._follow_up(interaction, reply)
        for role_id in reply.grant_role_ids:
            try:
                await self.client.http.add_guild_member_role(
                    interaction.guild_id, interaction.user_id, role_id, reason="Croupier reward"
                )
            except Exception:
                logger.exception(
                    "could not grant role %d (interaction %d)", role_id, interaction.id
                )

    def _unanswered(
        self, interaction: _Interaction, reply: Reply, failure: AnswerFailed, deferred: bool
    ) -> None:
        if failure.reason == "already_acknowledged" and not deferred:
            # A redelivered interaction: its first delivery was answered with the same
            # stored result, so the member saw it.
            logger.info("interaction %d was already answered (%s)", interaction.id, failure)
            return
        logger.warning(
            "interaction %d (%s) took effect but its answer %r (result %s) was not delivered: %s",
            interaction.id,
            interaction.what(),
            reply.title,
            dict(reply.result),
            failure,
        )
        self.metrics.discord_unanswered.labels(reason=failure.reason).inc()

    async def _follow_up(self, interaction: _Interaction, reply: Reply) -> None:
        try:
            await self.answers.followup(
                interaction.app_id,
                interaction.token,
                payload.message(reply),
                until=interaction.created + interaction_token_seconds,
            )
        except AnswerFailed as failure:
            logger.warning("interaction %d: the follow-up failed too: %s", interaction.id, failure)
        else:
            logger.info("interaction %d: answered with a follow-up instead", interaction.id)

    async def _send(self, interaction: _Interaction, reply: Reply, deferred: bool) -> None:
        """Answer: a command gets a new message, a button press edits the message it was
        on, and an ephemeral reply is always a new message only the user sees."""
        app, token = interaction.app_id, interaction.token
        message = payload.message(reply)
        if not deferred:
            update = interaction.button and not reply.ephemeral
            body = {"type": UPDATE_MESSAGE if update else CHANNEL_MESSAGE, "data": message}
            until = interaction.created + self.policy.deadline_seconds
            await self.answers.callback(interaction.id, token, body, until=until)
            return
        until = interaction.created + interaction_token_seconds
        if not reply.ephemeral:
            # After a defer, "@original" is the placeholder of a command, or the message
            # of a button.
            await self.answers.edit_original(app, token, message, until=until)
            return
        if not interaction.button:
            # A deferred command shows a public "thinking" placeholder; an ephemeral
            # answer cannot replace it, so it goes and a follow-up only the user sees
            # takes its place.
            await self.answers.delete_original(app, token, until=until)
        await self.answers.followup(app, token, message, until=until)


class _ThrottledLog:
    """Warnings of one kind, at most ``lines_per_second`` of them; the ones left out are
    counted and said in the next line that is written."""

    def __init__(self, log: logging.Logger, lines_per_second: int) -> None:
        self._log = log
        self._lines_per_second = lines_per_second
        self._second = 0
        self._written = 0
        self._left_out = 0

    def warning(self, message: str, *args: object) -> None:
        second = int(time.monotonic())
        if second != self._second:
            self._second, self._written = second, 0
        if self._written >= self._lines_per_second:
            self._left_out += 1
            return
        self._written += 1
        if self._left_out:
            message += " (and %d more like it, not logged)"
            args = (*args, self._left_out)
            self._left_out = 0
        self._log.warning(message, *args)


class _MemberRoles:
    """The invoking member's roles, changed through the library's REST client (which keeps
    Discord's per-route limits); called from the command, in trio. What the bot may grant
    is read from the guild cache (the bot's highest role) and the interaction's
    ``app_permissions`` (Manage Roles)."""

    def __init__(self, transport: _Transport, interaction: _Interaction) -> None:
        self._transport = transport
        self._interaction = interaction
        member = interaction.data.get("member") or {}
        self._held = frozenset(str(role) for role in member.get("roles") or ())
        permissions = str(interaction.data.get("app_permissions") or "")
        self._app_permissions = int(permissions) if permissions.isdigit() else None

    def can_grant(self, role_id: int) -> bool | None:
        if self._app_permissions is not None and not (
            self._app_permissions & (_MANAGE_ROLES | _ADMINISTRATOR)
        ):
            return False
        guild = self._transport.client.cache.get_guild(self._interaction.guild_id)
        me = guild.me if guild is not None else None
        role = guild.get_role(role_id) if guild is not None else None
        if me is None or role is None:
            return None
        return bool(role.position < me.top_role.position)

    async def grant(self, role_id: int) -> bool:
        if self.can_grant(role_id) is False:
            # Discord would refuse it; asking would only spend a request.
            raise RoleNotGrantable(role_id)
        try:
            await self._rest(self._transport.client.http.add_guild_member_role, role_id)
        except Forbidden:
            raise RoleNotGrantable(role_id) from None
        return str(role_id) not in self._held

    async def revoke(self, role_id: int) -> None:
        await self._rest(self._transport.client.http.remove_guild_member_role, role_id)

    async def _rest(self, method: Callable[..., Awaitable[Any]], role_id: int) -> None:
        interaction = self._interaction
        await trio_asyncio.aio_as_trio(method, loop=self._transport.loop)(
            interaction.guild_id, interaction.user_id, role_id, reason="Croupier item"
        )


def _shard_up(state: Any) -> bool:
    # interactions.py keeps no public flag for a shard being identified and connected.
    return bool(state._shard_ready.is_set())


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


# The client.


class _Client(interactions.AutoShardedClient):
    """interactions.py's sharded client with its interaction dispatch replaced by the
    transport's, the commands registered before the gateway, and shards started in waves
    that respect ``max_concurrency``."""

    def __init__(
        self, transport: _Transport, identify_interval_seconds: float, **kwargs: Any
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


class _CroupierExtension(interactions.Extension):
    """The connection listeners."""

    def __init__(self, bot: interactions.Client, transport: _Transport) -> None:
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
