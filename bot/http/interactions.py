"""Discord's HTTP interactions endpoint: ``POST /interactions``, answered in the response.

Discord signs every delivery (Ed25519 over timestamp + body, with the application's
public key); one that does not verify is refused with 401 before anything is parsed. A
PING is answered PONG. A command (type 2) or a button press (type 3) becomes an
``Invocation`` or a ``ButtonPress`` and runs through the same ``CommandSet`` as every
other transport, so idempotency, the rate limit and permissions are the same.

The answer is the HTTP response itself: no REST call per interaction. The command runs in
the endpoint's own nursery, not in the request: if it has not finished
``defer_after_seconds`` after the delivery arrived, the response is a deferral (type 5 for
a command, 6 for a button) sent in time for Discord's 3 s window, and the reply follows
by REST with the interaction's token once the command finishes.

A delivery of an interaction id already seen gets the first answer (and waits for it if
the first is still running); the recent answers are kept in a bounded map. At most
``in_flight_max`` interactions run at once; past that a delivery is answered "busy" at
once and nothing runs, rather than letting Discord's window pass.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from actors.errors import CroupierError, InvalidInput
from bot.dispatch import CommandSet, error_reply
from bot.http import payload as discord
from bot.http.discord_rest import DiscordRest, DiscordRestError, RestMemberRoles
from bot.http.server import bound_port, serve_http
from bot.inputs import snowflake
from bot.model import Reply
from limits import (
    EndpointLimits,
    interaction_timestamp_chars_max,
    register_retry_seconds_max,
    register_retry_seconds_min,
)
from metrics import Metrics, Readiness

log = logging.getLogger("croupier.interactions")

INTERACTIONS_PATH = "/interactions"
_AUTOCOMPLETE = 4
_AUTOCOMPLETE_RESULT = 8
_signature_bytes = 64


def verify_key(public_key_hex: str) -> VerifyKey:
    """The application's public key, as Discord's developer portal shows it (64 hex)."""
    return VerifyKey(bytes.fromhex(public_key_hex))


@dataclass
class _Job:
    """One interaction being answered: the delivery while it runs, and its first HTTP
    answer once known (all that a redelivery needs, so the delivery is dropped when the
    job ends and the bounded map of recent jobs holds answers only)."""

    payload: Mapping[str, Any]
    button: bool
    answered: trio.Event = field(default_factory=trio.Event)
    answer: dict[str, Any] | None = None
    deferred: bool = False
    # Set once the deferral has gone out in an HTTP response, so the follow-up cannot
    # reach Discord before the interaction it edits.
    deferral_sent: trio.Event = field(default_factory=trio.Event)


class InteractionsEndpoint:
    """The endpoint's state. ``app()`` is the ASGI app to serve (``POST /interactions``
    here, anything else to the Starlette app given), and ``run`` must be running (it
    owns the tasks that run commands) while it serves."""

    def __init__(
        self,
        commands: CommandSet,
        *,
        public_key: VerifyKey,
        rest: DiscordRest,
        metrics: Metrics,
        limits: EndpointLimits | None = None,
    ) -> None:
        self.commands = commands
        self.limits = limits or EndpointLimits()
        self._key = public_key
        self._rest = rest
        self._metrics = metrics
        self._jobs: OrderedDict[int, _Job] = OrderedDict()
        self._in_flight = 0
        # Commands run at most ``running_max`` at once, in arrival order (trio's
        # semaphore is fair). Without it a burst interleaves every command with every
        # other and all of them finish late; with it the first ones finish first and
        # the ones still queued at the defer budget are acknowledged by a deferral.
        self._running = trio.Semaphore(self.limits.running_max)
        self._nursery: trio.Nursery | None = None
        self._counted = {
            kind: metrics.discord_interactions.labels(type=kind)
            for kind in ("command", "button", "busy")
        }
        self._timed = {
            answer: metrics.discord_http_answer_duration.labels(answer=answer)
            for answer in ("message", "deferred", "refused")
        }

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def app(self, others: Starlette | None = None) -> ASGIApp:
        """The ASGI app: Discord's deliveries are handled here directly, every other
        request goes to ``others`` (the HTTP API and the dashboard, on Starlette), or
        gets a 404. Deliveries skip Starlette's middleware: at a thousand a second its
        request and response objects cost a fifth of the endpoint's time."""
        fallback: ASGIApp = others if others is not None else Starlette()

        async def front(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"] == INTERACTIONS_PATH:
                await self.serve_delivery(scope, receive, send)
            else:
                await fallback(scope, receive, send)

        return front

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the tasks that run commands and follow-ups, until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None

    # HTTP.

    async def serve_delivery(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One request to ``/interactions``, as a plain ASGI app."""
        arrived = trio.current_time()
        sent: trio.Event | None = None
        document: Mapping[str, Any]
        if scope["method"] != "POST":
            status, document = 405, {"code": "method", "message": "only POST is served here"}
        else:
            headers = dict(scope["headers"])
            body = await _read_body(headers, receive, self.limits.body_bytes_max)
            status, document, sent = await self._respond(headers, body, arrived)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send(
            {
                "type": "http.response.body",
                "body": json.dumps(document, separators=(",", ":")).encode(),
            }
        )
        if sent is not None:
            sent.set()
        answer = "refused" if status != 200 else "deferred" if sent is not None else "message"
        self._timed[answer].observe(trio.current_time() - arrived)

    async def _respond(
        self, headers: Mapping[bytes, bytes], body: bytes | None, arrived: float
    ) -> tuple[int, Mapping[str, Any], trio.Event | None]:
        """The status and JSON answer of one delivery, and, for a deferral, the event to
        set once it has been sent."""
        if body is None:
            return 413, {"code": "too_large", "message": "request body too large"}, None
        if not self._signed(headers, body):
            return 401, {"code": "bad_signature", "message": "invalid request signature"}, None
        try:
            delivered = json.loads(body)
            if not isinstance(delivered, dict):
                raise ValueError("not an object")
        except ValueError:
            return 400, {"code": "invalid_input", "message": "body is not a JSON object"}, None
        kind = delivered.get("type")
        if kind == discord.PING:
            return 200, {"type": discord.PONG}, None
        if kind == _AUTOCOMPLETE:
            # No option of Croupier's autocompletes; an empty list is a valid answer.
            return 200, {"type": _AUTOCOMPLETE_RESULT, "data": {"choices": []}}, None
        if kind not in (discord.APPLICATION_COMMAND, discord.MESSAGE_COMPONENT):
            return 200, _message_answer(_unsupported_reply(), button=False), None
        try:
            interaction_id = snowflake(delivered.get("id"), "id")
        except InvalidInput as err:
            return 400, {"code": err.code, "message": err.message}, None
        job, first = self._job(interaction_id, delivered, kind == discord.MESSAGE_COMPONENT)
        if job is None:
            self._counted["busy"].inc()
            return 200, _message_answer(_busy_reply(), button=False), None
        if first:
            self._start(job)
            with trio.move_on_at(arrived + self.limits.defer_after_seconds):
                await job.answered.wait()
            # State changes between awaits: the reply cannot arrive between this check
            # and the deferral, so exactly one of the two is the first answer.
            if not job.answered.is_set():
                job.deferred = True
                kind = (
                    discord.DEFERRED_UPDATE_MESSAGE
                    if job.button
                    else discord.DEFERRED_CHANNEL_MESSAGE
                )
                job.answer = {"type": kind}
                job.answered.set()
                return 200, job.answer, job.deferral_sent
        await job.answered.wait()
        assert job.answer is not None
        return 200, job.answer, None

    def _signed(self, headers: Mapping[bytes, bytes], body: bytes) -> bool:
        signature = headers.get(b"x-signature-ed25519", b"")
        timestamp = headers.get(b"x-signature-timestamp", b"")
        if not timestamp or len(timestamp) > interaction_timestamp_chars_max:
            return False
        try:
            raw = bytes.fromhex(signature.decode("ascii"))
            if len(raw) != _signature_bytes:
                return False
            self._key.verify(timestamp + body, raw)
        except (ValueError, BadSignatureError):
            return False
        return True

    # Interactions.

    def _job(
        self, interaction_id: int, delivered: dict[str, Any], button: bool
    ) -> tuple[_Job | None, bool]:
        """The job of this interaction, and whether this delivery created it; no job
        when too many are running."""
        known = self._jobs.get(interaction_id)
        if known is not None:
            return known, False
        if self._in_flight >= self.limits.in_flight_max:
            return None, False
        job = _Job(delivered, button)
        self._jobs[interaction_id] = job
        while len(self._jobs) > self.limits.answers_kept_max:
            self._jobs.popitem(last=False)
        return job, True

    def _start(self, job: _Job) -> None:
        assert self._nursery is not None, "InteractionsEndpoint.run is not running"
        self._in_flight += 1
        self._counted["button" if job.button else "command"].inc()
        self._nursery.start_soon(self._run_job, job)

    async def _run_job(self, job: _Job) -> None:
        try:
            reply = await self._run(job)
            if not job.answered.is_set():
                job.answer = _message_answer(reply, button=job.button)
                job.answered.set()
            else:
                await self._follow_up(job, reply)
            await self._grant_roles(job, reply)
        finally:
            self._in_flight -= 1
            job.payload = {}

    async def _run(self, job: _Job) -> Reply:
        async with self._running:
            return await self._run_now(job)

    async def _run_now(self, job: _Job) -> Reply:
        try:
            if job.button:
                return await self.commands.press(discord.button_press(job.payload))
            name = _mapping(job.payload.get("data")).get("name")
            command = self.commands.command(name) if isinstance(name, str) else None
            inv = discord.invocation(job.payload, command)
            if inv.guild_id:
                roles = RestMemberRoles(self._rest, inv, job.payload)
                inv = dataclasses.replace(inv, roles=roles)
            return await self.commands.invoke(inv)
        except CroupierError as err:
            # Only a malformed payload gets here: the command set answers every error
            # of the command itself.
            return error_reply(err)

    async def _follow_up(self, job: _Job, reply: Reply) -> None:
        """Finish a deferred interaction by REST with its own token."""
        application_id = int(job.payload.get("application_id") or 0)
        token = str(job.payload.get("token") or "")
        interaction_id = job.payload.get("id")
        # The deferral normally leaves within milliseconds; a client that went away
        # before it was sent never gets it, and the follow-up then fails at Discord.
        with trio.move_on_after(self.limits.defer_after_seconds):
            await job.deferral_sent.wait()
        message = discord.message(reply)
        try:
            with trio.fail_after(self.limits.follow_up_seconds_max):
                if not reply.ephemeral:
                    message.pop("flags", None)
                    await self._rest.edit_original(application_id, token, message)
                    return
                if not job.button:
                    # A deferred command shows a public "thinking" placeholder; an
                    # ephemeral answer cannot replace it, so it goes and a follow-up only
                    # the user sees takes its place.
                    await self._rest.delete_original(application_id, token)
                await self._rest.follow_up(application_id, token, message)
        except Exception:
            log.exception(
                "could not send the reply of deferred interaction %s (%s)",
                interaction_id,
                reply.title,
            )

    async def _grant_roles(self, job: _Job, reply: Reply) -> None:
        if not reply.grant_role_ids:
            return
        press_or_inv = (
            discord.button_press(job.payload)
            if job.button
            else discord.invocation(job.payload, None)
        )
        for role_id in reply.grant_role_ids:
            try:
                await self._rest.add_role(
                    press_or_inv.guild_id, press_or_inv.user_id, role_id, "Croupier reward"
                )
            except Exception:
                log.exception("could not grant role %d to user %d", role_id, press_or_inv.user_id)


async def _read_body(
    headers: Mapping[bytes, bytes], receive: Receive, bytes_max: int
) -> bytes | None:
    """The body, or None when it is (or claims to be) longer than ``bytes_max`` or the
    client went away before sending it all."""
    declared = headers.get(b"content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > bytes_max):
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > bytes_max:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _message_answer(reply: Reply, *, button: bool) -> dict[str, Any]:
    """The HTTP answer carrying ``reply``: a button's public reply replaces the message it
    was on; anything else (a command, an ephemeral reply) is a new message."""
    message = discord.message(reply)
    if button and not reply.ephemeral:
        return {"type": discord.UPDATE_MESSAGE, "data": message}
    return {"type": discord.CHANNEL_MESSAGE, "data": message}


def _busy_reply() -> Reply:
    return error_reply(_Overloaded())


def _unsupported_reply() -> Reply:
    return error_reply(InvalidInput("type", "Croupier does not handle this kind of interaction"))


class _Overloaded(CroupierError):
    code = "busy"

    def __init__(self) -> None:
        super().__init__(
            "Croupier is very busy right now; nothing was done. Try again in a moment."
        )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


# Serving.

READINESS_CONDITION = "interactions_endpoint"


async def run_endpoint(
    commands: CommandSet,
    listeners: list[socket.socket],
    *,
    public_key_hex: str,
    api_url: str,
    token: str,
    metrics: Metrics,
    readiness: Readiness,
    register: bool,
    limits: EndpointLimits | None = None,
    task_status: trio.TaskStatus[InteractionsEndpoint] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the endpoint on ``listeners`` until cancelled. With ``register`` (the
    gateway is off, so nothing else does it) the commands are put on Discord over REST,
    retried until Discord takes them; readiness holds once it is listening and, with
    ``register``, the commands are registered."""
    async with DiscordRest(api_url, token) as rest, trio.open_nursery() as nursery:
        endpoint = InteractionsEndpoint(
            commands,
            public_key=verify_key(public_key_hex),
            rest=rest,
            metrics=metrics,
            limits=limits,
        )
        await nursery.start(endpoint.run)
        await nursery.start(serve_http, endpoint.app(), listeners)
        where = f"listening on port {bound_port(listeners)}"
        readiness.set(READINESS_CONDITION, not register, where)
        task_status.started(endpoint)
        if register:
            await _register_until_done(commands, rest)
            readiness.set(READINESS_CONDITION, True, f"{where}, commands registered")


async def _register_until_done(commands: CommandSet, rest: DiscordRest) -> None:
    backoff = register_retry_seconds_min
    while True:
        try:
            application_id = await register_commands(commands, rest)
        except (DiscordRestError, httpx.HTTPError) as exc:
            log.warning("registering the commands failed (%s); retrying in %.0f s", exc, backoff)
            await trio.sleep(backoff)
            backoff = min(backoff * 2, register_retry_seconds_max)
            continue
        log.info(
            "registered %d commands for application %d", len(commands.commands), application_id
        )
        return


async def register_commands(commands: CommandSet, rest: DiscordRest) -> int:
    """Put every command of ``commands`` on Discord over REST; the application id."""
    application_id = await rest.application_id()
    await rest.register_commands(
        application_id, [discord.command_definition(c) for c in commands.commands]
    )
    return application_id
