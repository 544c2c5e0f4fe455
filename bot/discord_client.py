"""The Discord transport: interactions.py 5.16 run inside trio through trio-asyncio.

``run_discord`` opens an asyncio loop on top of trio, registers every command of a
``CommandSet`` as a slash command and routes every button to ``CommandSet.press``. Each
interaction crosses into trio to run the command, then back into asyncio to answer:

    gateway (asyncio) -> callback in an Extension -> trio: CommandSet -> asyncio: REST reply

Known traps of interactions.py under trio-asyncio, and what this module does about them:

- ``Client.stop()`` can spin forever, so it is never called: shutdown cancels the trio
  scope around ``Client.astart`` (after letting in-flight interactions finish).
- One stray asyncio task error would end the whole loop (trio-asyncio's default exception
  handler re-raises), so a handler that logs and counts them is installed.
- Command callbacks are only collected from ``__main__`` or from an ``Extension``, so
  commands are built at start-up inside one ``Extension``.
- The REST base URL is the class constant ``Route.BASE``; it is set for the run and put
  back afterwards. The gateway URL comes from ``GET /gateway``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any

import interactions
import trio
import trio_asyncio
from interactions.api.http.route import Route
from interactions.models.discord.message import process_message_payload

from bot.dispatch import CommandSet
from bot.model import (
    Button,
    ButtonPress,
    ButtonStyle,
    Command,
    Invocation,
    OptionKind,
    Reply,
    UserRef,
)
from metrics import Metrics

logger = logging.getLogger(__name__)

DISCORD_API_URL = "https://discord.com/api/v10"

# How long a shutdown waits for interactions already being handled before cancelling them.
drain_seconds_default = 10.0
# How long a command may run before its interaction is acknowledged ("thinking..."):
# Discord drops an interaction not answered within 3 s, and the answer needs a round trip.
defer_after_seconds_default = 2.0
_latency_poll_seconds = 1.0

_MANAGE_GUILD = 1 << 5
_ADMINISTRATOR = 1 << 3

# Discord's limits on what a message may carry; longer text is cut, since a refused
# reply would leave the user with "This interaction failed" instead.
_title_chars_max = 256
_description_chars_max = 4096
_field_name_chars_max = 256
_field_value_chars_max = 1024
_fields_max = 25
_footer_chars_max = 2048
_label_chars_max = 80
_buttons_per_row_max = 5
_rows_max = 5

_OPTION_TYPES = {
    OptionKind.INTEGER: interactions.OptionType.INTEGER,
    OptionKind.STRING: interactions.OptionType.STRING,
    OptionKind.USER: interactions.OptionType.USER,
    OptionKind.BOOLEAN: interactions.OptionType.BOOLEAN,
}
_BUTTON_STYLES = {
    ButtonStyle.PRIMARY: interactions.ButtonStyle.PRIMARY,
    ButtonStyle.SECONDARY: interactions.ButtonStyle.SECONDARY,
    ButtonStyle.SUCCESS: interactions.ButtonStyle.SUCCESS,
    ButtonStyle.DANGER: interactions.ButtonStyle.DANGER,
}


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
    drain_seconds: float = drain_seconds_default,
    defer_after_seconds: float = defer_after_seconds_default,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``commands`` on Discord until cancelled or until ``stop`` is set.

    Call it from inside ``trio.run``, once per process (the REST base URL is a class
    constant of the library); it opens its own trio-asyncio loop. It reports
    ready once the client is launched. ``on_connected(True)`` is called (in the trio
    thread) once the gateway is ready and the commands are synced, ``on_connected(False)``
    when the connection is lost or the transport stops; ``metrics.discord_connected``
    follows it. Shutting down (cancellation or ``stop``) first refuses new interactions
    and waits up to ``drain_seconds`` for the ones being handled to answer, then cancels
    the client. Raises ``GatewayClosed`` if the client gives up by itself, and the
    client's own error (a bad token, say) if it cannot start.
    """
    previous_base = Route.BASE
    Route.BASE = api_url.rstrip("/")
    try:
        async with trio_asyncio.open_loop() as loop:
            loop.set_exception_handler(_stray_error_handler(metrics))
            transport = _Transport(commands, metrics, on_connected, loop, defer_after_seconds)
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


class _Transport:
    """The state of one run: the client, in-flight interactions and the connection."""

    def __init__(
        self,
        commands: CommandSet,
        metrics: Metrics,
        on_connected: Callable[[bool], None],
        loop: asyncio.AbstractEventLoop,
        defer_after_seconds: float,
    ) -> None:
        self.commands = commands
        self.defer_after_seconds = defer_after_seconds
        self.metrics = metrics
        self.loop = loop
        self._on_connected = on_connected
        self.connected = False
        self.accepting = True
        self.in_flight = 0
        self._idle = trio.Event()
        # Why the client stopped by itself, if it did.
        self.failure: Exception | None = None
        self.client = interactions.Client(
            intents=interactions.Intents.GUILDS,
            sync_interactions=True,
            delete_unused_application_cmds=True,
            send_command_tracebacks=False,
            # Interactions that arrive before the commands are synced are not run; the
            # user is told the bot is starting rather than seeing "interaction failed".
            send_not_ready_messages=True,
            disable_dm_commands=True,
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
                    self.failure = GatewayClosed("the Discord gateway connection ended")
            except Exception as err:
                self.failure = err
                # A client that failed to start leaves its HTTP session open; close it
                # so a reconnect does not leak one session per attempt.
                with trio.CancelScope(shield=True):
                    await trio_asyncio.aio_as_trio(self.client.http.close, loop=self.loop)()
            finally:
                finished.set()

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run_client)
                nursery.start_soon(self._poll_latency)
                task_status.started()
                try:
                    await _first_of(finished, stop)
                finally:
                    with trio.CancelScope(shield=True):
                        await self._drain(drain_seconds)
                        client_scope.cancel()
                        await finished.wait()
                    nursery.cancel_scope.cancel()
        finally:
            self.set_connected(False)

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

    async def _poll_latency(self) -> None:
        while True:
            await trio.sleep(_latency_poll_seconds)
            if self.connected:
                # The gateway object goes away while the client disconnects.
                with contextlib.suppress(AttributeError):
                    latency = self.client.latency
                    if math.isfinite(latency):
                        self.metrics.discord_latency.set(latency)

    def set_connected(self, connected: bool) -> None:
        if connected == self.connected:
            return
        self.connected = connected
        self.metrics.discord_connected.set(1 if connected else 0)
        logger.info("Discord %s", "connected" if connected else "disconnected")
        self._on_connected(connected)

    # Interactions, on the trio side.

    async def handle_command(self, ctx: interactions.SlashContext) -> None:
        self.metrics.discord_interactions.labels(type="command").inc()

        async def run() -> Reply:
            inv = Invocation(
                command=ctx.invoke_target,
                interaction_id=int(ctx.id),
                user_id=int(ctx.author_id),
                guild_id=int(ctx.guild_id or 0),
                channel_id=int(ctx.channel_id or 0),
                can_manage_guild=_can_manage_guild(ctx),
                options=_options(self.commands.command(ctx.invoke_target), ctx.kwargs),
            )
            return await self.commands.invoke(inv)

        await self._handle(ctx, run, button=False)

    async def handle_button(self, ctx: interactions.ComponentContext) -> None:
        self.metrics.discord_interactions.labels(type="button").inc()

        async def run() -> Reply:
            press = ButtonPress(
                custom_id=ctx.custom_id,
                interaction_id=int(ctx.id),
                user_id=int(ctx.author_id),
                guild_id=int(ctx.guild_id or 0),
                channel_id=int(ctx.channel_id or 0),
                can_manage_guild=_can_manage_guild(ctx),
            )
            return await self.commands.press(press)

        await self._handle(ctx, run, button=True)

    async def _handle(
        self,
        ctx: interactions.InteractionContext,
        run: Callable[[], Awaitable[Reply]],
        *,
        button: bool,
    ) -> None:
        if not self.accepting:
            logger.info("interaction %s arrived while shutting down; not answered", ctx.id)
            return
        self.in_flight += 1
        try:
            reply, deferred = await self._run_deferring(ctx, run, button=button)
            await self._answer(ctx, reply, button=button, deferred=deferred)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()
                self._idle = trio.Event()

    async def _run_deferring(
        self,
        ctx: interactions.InteractionContext,
        run: Callable[[], Awaitable[Reply]],
        *,
        button: bool,
    ) -> tuple[Reply, bool]:
        """Run the command; if it is still running after ``defer_after_seconds``,
        acknowledge the interaction meanwhile, because Discord drops an interaction that
        is not answered within 3 s. Return the reply and whether it was deferred."""
        replies: list[Reply] = []
        deferred = False
        async with trio.open_nursery() as nursery:

            async def work() -> None:
                replies.append(await run())
                nursery.cancel_scope.cancel()

            nursery.start_soon(work)
            await trio.sleep(self.defer_after_seconds)
            # Shielded: a defer that is half sent when the reply arrives must complete,
            # or the answer would not know which of Discord's states it is in.
            with trio.CancelScope(shield=True):
                try:
                    await trio_asyncio.aio_as_trio(_defer, loop=self.loop)(ctx, button)
                    deferred = True
                except Exception:
                    logger.exception("could not defer interaction %s", ctx.id)
            await trio.sleep_forever()
        return replies[0], deferred

    async def _answer(
        self, ctx: interactions.InteractionContext, reply: Reply, *, button: bool, deferred: bool
    ) -> None:
        # By now the command has taken effect, so a failure to answer is logged and the
        # role grants still happen.
        try:
            await trio_asyncio.aio_as_trio(_send, loop=self.loop)(ctx, reply, button, deferred)
        except Exception:
            logger.exception("could not answer interaction %s", ctx.id)
        for role_id in reply.grant_role_ids:
            try:
                await trio_asyncio.aio_as_trio(
                    self.client.http.add_guild_member_role, loop=self.loop
                )(ctx.guild_id, ctx.author_id, role_id, reason="Croupier reward")
            except Exception:
                logger.exception("could not grant role %d to user %s", role_id, ctx.author_id)


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


def _can_manage_guild(ctx: interactions.InteractionContext) -> bool:
    return bool(int(ctx.author_permissions) & (_MANAGE_GUILD | _ADMINISTRATOR))


def _options(command: Command | None, values: dict[str, Any]) -> dict[str, Any]:
    """Discord's option values as the command model types them: a user option arrives
    resolved (a User or Member, whose ``bot`` flag is kept) or, unresolved, as an id."""
    kinds = {option.name: option.kind for option in command.options} if command else {}
    options = {}
    for name, value in values.items():
        if kinds.get(name) is OptionKind.USER:
            if isinstance(value, str | int):
                value = UserRef(int(value))
            else:
                value = UserRef(int(value.id), bot=bool(value.bot))
        options[name] = value
    return options


# Replies, on the asyncio side.


async def _defer(ctx: interactions.InteractionContext, button: bool) -> None:
    if button:
        assert isinstance(ctx, interactions.ComponentContext)
        await ctx.defer(edit_origin=True)
    else:
        await ctx.defer()


async def _send(
    ctx: interactions.InteractionContext, reply: Reply, button: bool, deferred: bool
) -> None:
    """Answer: a command gets a new message, a button press edits the message it was on,
    and an ephemeral reply is always a new message only the user sees."""
    embeds: list[interactions.Embed | dict[Any, Any]] = [_embed(reply)]
    components = _rows(reply.buttons)
    if not deferred:
        if button and not reply.ephemeral:
            assert isinstance(ctx, interactions.ComponentContext)
            await ctx.edit_origin(embeds=embeds, components=components)
        else:
            await ctx.send(embeds=embeds, components=components, ephemeral=reply.ephemeral)
    elif not reply.ephemeral:
        # After a defer, "@original" is the placeholder of a command, or the message of a
        # button.
        await ctx.edit("@original", embeds=embeds, components=components)
    else:
        if not button:
            # A deferred command shows a public "thinking" placeholder; an ephemeral
            # answer cannot replace it, so it goes and a follow-up only the user sees
            # takes its place.
            await ctx.delete()
        payload = process_message_payload(
            embeds=embeds, components=components, flags=interactions.MessageFlags.EPHEMERAL
        )
        await ctx.client.http.post_followup(payload, ctx.client.app.id, ctx.token)


def _embed(reply: Reply) -> interactions.Embed:
    embed = interactions.Embed(
        title=_cut(reply.title, _title_chars_max),
        description=_cut(reply.description, _description_chars_max) or None,
        color=reply.color,
    )
    for field in reply.fields[:_fields_max]:
        embed.add_field(
            _cut(field.name, _field_name_chars_max),
            _cut(field.value, _field_value_chars_max),
            inline=field.inline,
        )
    if reply.footer:
        embed.set_footer(_cut(reply.footer, _footer_chars_max))
    return embed


def _rows(buttons: tuple[Button, ...]) -> list[interactions.BaseComponent | dict[Any, Any]]:
    assert len(buttons) <= _buttons_per_row_max * _rows_max, "Discord shows at most 25 buttons"
    return [
        interactions.ActionRow(
            *(
                interactions.Button(
                    style=_BUTTON_STYLES[button.style],
                    label=_cut(button.label, _label_chars_max),
                    custom_id=button.custom_id,
                    disabled=button.disabled,
                )
                for button in buttons[start : start + _buttons_per_row_max]
            )
        )
        for start in range(0, len(buttons), _buttons_per_row_max)
    ]


def _cut(text: str, chars_max: int) -> str:
    return text if len(text) <= chars_max else text[: chars_max - 1] + "…"


# Registration.


class _CroupierExtension(interactions.Extension):
    """Holds the slash commands built from the command set, the one component callback
    that takes every button, and the connection listeners."""

    def __init__(self, bot: interactions.Client, transport: _Transport) -> None:
        self.transport = transport
        for command in transport.commands.commands:
            self._register(_slash_command(command, self._on_command))
        self._register(
            interactions.ComponentCommand(
                name="croupier_buttons",
                listeners=[re.compile(r".+", re.DOTALL)],
                callback=self._on_button,
            )
        )

    def _register(self, command: interactions.InteractionCommand) -> None:
        command.extension = self
        self.bot.add_command(command)
        self._commands.append(command)

    async def _on_command(self, ctx: interactions.SlashContext) -> None:
        await trio_asyncio.trio_as_aio(self.transport.handle_command, loop=self.transport.loop)(ctx)

    async def _on_button(self, ctx: interactions.ComponentContext) -> None:
        await trio_asyncio.trio_as_aio(self.transport.handle_button, loop=self.transport.loop)(ctx)

    @interactions.listen(interactions.events.Ready)
    async def _on_ready(self, event: interactions.events.Ready) -> None:
        self.transport.set_connected(True)

    @interactions.listen(interactions.events.Resume)
    async def _on_resume(self, event: interactions.events.Resume) -> None:
        self.transport.set_connected(True)

    @interactions.listen(interactions.events.Disconnect)
    async def _on_disconnect(self, event: interactions.events.Disconnect) -> None:
        self.transport.set_connected(False)


def _slash_command(
    command: Command, callback: Callable[[interactions.SlashContext], Any]
) -> interactions.SlashCommand:
    options: list[interactions.SlashCommandOption | dict[Any, Any]] = [
        interactions.SlashCommandOption(
            name=option.name,
            type=_OPTION_TYPES[option.kind],
            description=option.description,
            required=option.required,
            choices=[
                interactions.SlashCommandChoice(
                    name=choice, value=int(choice) if option.kind is OptionKind.INTEGER else choice
                )
                for choice in option.choices
            ],
            min_value=option.min_value,
            max_value=option.max_value,
            max_length=option.max_length,
        )
        for option in command.options
    ]
    return interactions.SlashCommand(
        name=command.name,
        description=command.description,
        options=options,
        callback=callback,
        default_member_permissions=(
            interactions.Permissions.MANAGE_GUILD if command.admin_only else None
        ),
        dm_permission=False,
    )
