"""Answering Discord interactions: deferring, refusing, answering and following up.

``InteractionHandling`` is the part of the Discord transport that takes one raw
INTERACTION_CREATE and sees it answered: it runs the command in trio (one crossing per
interaction), acknowledges it first when it is getting old, refuses it "busy" past the
in-flight bound or while stopping, and logs, counts and follows up an answer that could
not be delivered. ``bot.discord_client`` wires it to the gateway and the lifecycle.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio
import trio_asyncio
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
from limits import interaction_token_seconds, not_run_lines_per_second_max
from metrics import Metrics

# The transport's log, whichever of its modules writes the line.
logger = logging.getLogger("bot.discord_client")


_DISCORD_EPOCH_MS = 1_420_070_400_000
_MESSAGE_COMPONENT = 3
_AUTOCOMPLETE = 4
_AUTOCOMPLETE_RESULT = 8


class Policy:
    """When to defer and when to refuse: the transport's time and load bounds."""

    def __init__(self, defer_after_seconds: float, deadline_seconds: float, in_flight_max: int):
        self.defer_after_seconds = defer_after_seconds
        self.deadline_seconds = deadline_seconds
        self.in_flight_max = in_flight_max


class Interaction:
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


class InteractionHandling:
    """What the transport does with each interaction, between the gateway and trio."""

    # The library's client, made by the transport once this part exists.
    client: Any

    def __init__(
        self,
        commands: CommandSet,
        metrics: Metrics,
        loop: asyncio.AbstractEventLoop,
        policy: Policy,
    ) -> None:
        self.commands = commands
        self.metrics = metrics
        self.loop = loop
        self.policy = policy
        self.accepting = True
        self.in_flight = 0
        # Interactions that ran nothing are logged a few a second (they are all counted):
        # under overload, a line for each would cost the CPU the others need.
        self._not_run = _ThrottledLog(logger, not_run_lines_per_second_max)
        # Where commands run, in trio; set while serving.
        self._nursery: trio.Nursery | None = None
        self._idle = trio.Event()
        self.answers = InteractionAnswers(Route.BASE, "DiscordBot (Croupier, 1.0)")

    # Interactions. They are handled on the asyncio side, where the gateway delivers them
    # and the answers go out; only the command itself crosses into trio. One crossing per
    # interaction instead of one per request halved the transport's CPU per interaction.

    async def handle(self, data: Mapping[str, Any], received: float) -> None:
        try:
            interaction = Interaction(data, received)
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

    async def _serve(self, interaction: Interaction) -> None:
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

    def _runner(self, interaction: Interaction) -> Callable[[], Awaitable[Reply]]:
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
        self, interaction: Interaction, run: Callable[[], Awaitable[Reply]]
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

    async def _defer(self, interaction: Interaction) -> bool:
        kind = DEFERRED_UPDATE_MESSAGE if interaction.button else DEFERRED_CHANNEL_MESSAGE
        return await self._acknowledge(interaction, {"type": kind})

    async def _acknowledge(self, interaction: Interaction, body: Mapping[str, Any]) -> bool:
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

    async def _refuse(self, interaction: Interaction, *, restarting: bool) -> None:
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

    async def _answer(self, interaction: Interaction, reply: Reply, *, deferred: bool) -> None:
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
        self, interaction: Interaction, reply: Reply, failure: AnswerFailed, deferred: bool
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

    async def _follow_up(self, interaction: Interaction, reply: Reply) -> None:
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

    async def _send(self, interaction: Interaction, reply: Reply, deferred: bool) -> None:
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

    def __init__(self, transport: InteractionHandling, interaction: Interaction) -> None:
        self._transport = transport
        self._interaction = interaction
        member = interaction.data.get("member") or {}
        self._held = frozenset(str(role) for role in member.get("roles") or ())
        self._may_manage_roles = payload.bot_may_manage_roles(interaction.data)

    def can_grant(self, role_id: int) -> bool | None:
        if self._may_manage_roles is False:
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
