"""A fake Discord: REST API and gateway websocket on 127.0.0.1, for end-to-end tests.

It runs an aiohttp server on its own asyncio loop in its own thread, so it is independent
of the client under test (which runs asyncio inside trio). Tests talk to it from trio:
they push gateway events with ``send_interaction`` (or ``send_interactions`` for load)
and read what the client did from thread-safe records, waiting for them with bounded
polling.

It speaks what interactions.py 5.16 needs, records everything, including requests to
routes it does not know (answered 404, so a route the client starts using shows up in
``unknown_routes`` instead of passing silently), and enforces what Discord enforces:

- one initial callback per interaction (a second gets 400, code 40060) and only within
  ``deadline_seconds`` of the interaction being sent (after it: 404, code 10062);
- follow-ups and ``@original`` edits only once the interaction was acknowledged (else
  404, code 10015) and only for ``token_seconds`` (after it: 401, code 50027);
- rate-limit headers on every response (``X-RateLimit-Limit``, ``-Remaining``, ``-Reset``,
  ``-Reset-After``, ``-Bucket``), per bucket limits and the global limit of
  ``global_per_second`` on every route except the interaction ones, which Discord exempts,
  and 429s on demand (``rate_limit``);
- ``GET /gateway/bot`` with ``shards`` and ``max_concurrency``; an IDENTIFY must carry a
  valid ``shard`` when there is more than one (else the socket closes with 4010 or 4011),
  and different shards of one ``max_concurrency`` bucket must identify
  ``identify_interval_seconds`` apart (else 4008); a RESUME of an unknown session is
  invalid (op 9);
- a role at or above the bot's highest role cannot be granted (403, code 50013).

The public methods and records below are what tests and ``croupier bench discord`` use;
keep them stable.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import trio
from aiohttp import WSMsgType, web

from tests.fake_discord.oauth import FakeOAuth

T = TypeVar("T")

APP_ID = 900_000_000_000_000_001
BOT_USER_ID = 900_000_000_000_000_002
GUILD_ID = 900_000_000_000_000_003
# A token the fake refuses, as Discord does a revoked one.
REFUSED_TOKEN = "refused-token"
CHANNEL_ID = 900_000_000_000_000_004
# The role Discord gives the bot when it joins, and where it sits in the role list.
BOT_ROLE_ID = 900_000_000_000_000_005
BOT_ROLE_POSITION = 10

# Discord's figures, the defaults of the fake.
INTERACTION_DEADLINE_SECONDS = 3.0
INTERACTION_TOKEN_SECONDS = 15 * 60.0
IDENTIFY_INTERVAL_SECONDS = 5.0
GLOBAL_REQUESTS_PER_SECOND = 50
_guilds_per_shard_max = 2500

_DISCORD_EPOCH_MS = 1_420_070_400_000
_EPHEMERAL_FLAG = 1 << 6
_CALLBACK_MESSAGE = 4
_CALLBACK_DEFERRED_MESSAGE = 5
_CALLBACK_DEFERRED_UPDATE = 6
_CALLBACK_UPDATE = 7
_OPTION_TYPE_USER = 6

# Discord's JSON error codes the fake answers with.
UNKNOWN_INTERACTION = 10062
ALREADY_ACKNOWLEDGED = 40060
UNKNOWN_WEBHOOK = 10015
INVALID_WEBHOOK_TOKEN = 50027
MISSING_PERMISSIONS = 50013


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: Mapping[str, str]
    body: Any
    # Seconds on the fake's monotonic clock when the request arrived.
    at: float = 0.0
    status: int = 0


@dataclass(frozen=True)
class Callback:
    """One ``POST /interactions/{id}/{token}/callback``. ``accepted`` is False when Discord
    would refuse it: a second answer (``code`` 40060) or one past the deadline (10062).
    ``elapsed_seconds`` runs from when the fake sent the interaction."""

    interaction_id: int
    type: int
    data: Mapping[str, Any]
    accepted: bool
    elapsed_seconds: float = 0.0
    code: int | None = None


@dataclass(frozen=True)
class Identify:
    """One IDENTIFY on the gateway: the shard it asked for and whether it was let in."""

    shard_id: int
    shard_count: int
    at: float
    accepted: bool


@dataclass
class _Session:
    ws: web.WebSocketResponse
    shard_id: int | None = None
    sequence: int = 0


@dataclass
class _Bucket:
    """A rate-limit bucket: ``used`` requests in the window that ends at ``resets_at``."""

    name: str
    used: int = 0
    resets_at: float = 0.0


@dataclass
class _Forced429:
    pattern: re.Pattern[str]
    method: str | None
    count: int
    retry_after: float
    is_global: bool


@dataclass
class _Sent:
    payload: dict[str, Any]
    at: float
    acknowledged: bool = False


@dataclass(eq=False)
class FakeDiscord:
    """Start with ``with FakeDiscord() as fake:``; point the client at ``fake.api_url``.

    ``roles`` maps the ids of the guilds' roles, other than ``@everyone`` and the bot's,
    to their positions; a role the guild does not list is treated as an ordinary role
    below the bot's.
    """

    heartbeat_interval_ms: int = 250
    guild_ids: Sequence[int] = (GUILD_ID,)
    shards: int = 1
    max_concurrency: int = 16
    deadline_seconds: float = INTERACTION_DEADLINE_SECONDS
    token_seconds: float = INTERACTION_TOKEN_SECONDS
    identify_interval_seconds: float = IDENTIFY_INTERVAL_SECONDS
    roles: Mapping[int, int] = field(default_factory=dict)
    bot_role_position: int = BOT_ROLE_POSITION
    bucket_limit: int = 50
    bucket_window_seconds: float = 1.0
    global_per_second: int = GLOBAL_REQUESTS_PER_SECOND
    port: int = 0
    # Discord's OAuth2 endpoints, for the dashboard's login (tests/fake_discord/oauth.py).
    oauth: FakeOAuth | None = None

    def __post_init__(self) -> None:
        self.guild_ids = tuple(self.guild_ids)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._requests: list[RecordedRequest] = []
        self._unknown: list[tuple[str, str]] = []
        self._commands: dict[int, list[dict[str, Any]]] = {}
        self._command_puts: list[tuple[int, list[dict[str, Any]]]] = []
        self._callbacks: list[Callback] = []
        self._sent: dict[str, _Sent] = {}
        self._messages: dict[str, dict[str, Any]] = {}
        self._original: dict[str, str] = {}
        self._followups: list[tuple[str, dict[str, Any]]] = []
        self._role_grants: list[tuple[int, int, int]] = []
        self._gateway_log: list[dict[str, Any]] = []
        self._identifies: list[Identify] = []
        self._heartbeats = 0
        self._sessions: list[_Session] = []
        self._buckets: dict[str, _Bucket] = {}
        self._global = _Bucket("global")
        self._forced: list[_Forced429] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle.

    def __enter__(self) -> FakeDiscord:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(sock, started), name="fake-discord", daemon=True
        )
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the fake Discord did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._loop is not None and self._thread is not None
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self, sock: socket.socket, started: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_get("/gateway-ws", self._gateway)
        if self.oauth is not None:
            self.oauth.mount(app.router, self.port, self._rest)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        app.router.add_route("*", "/{tail:.*}", self._rest)
        # No access log: under load, formatting a line per request would cost the fake
        # more than answering it.
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        loop.run_until_complete(self._runner.setup())
        loop.run_until_complete(web.SockSite(self._runner, sock, backlog=2048).start())
        started.set()
        loop.run_forever()
        loop.close()

    async def _shutdown(self) -> None:
        for session in list(self._sessions):
            await session.ws.close()
        assert self._runner is not None
        await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    # Records (copies, safe to read from the test's thread).

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def unknown_routes(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._unknown)

    @property
    def command_puts(self) -> list[tuple[int, list[dict[str, Any]]]]:
        """Every ``PUT`` of application commands: (scope, commands); scope 0 is global."""
        with self._lock:
            return copy.deepcopy(self._command_puts)

    def commands(self, scope: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._commands.get(scope, []))

    def callbacks(self, interaction_id: int) -> list[Callback]:
        with self._lock:
            return [c for c in self._callbacks if c.interaction_id == interaction_id]

    @property
    def all_callbacks(self) -> list[Callback]:
        with self._lock:
            return list(self._callbacks)

    def acknowledgements(self) -> dict[int, float | None]:
        """For every interaction sent so far, the seconds from sending it to its accepted
        initial callback, or None while it has none."""
        with self._lock:
            first = {c.interaction_id: c.elapsed_seconds for c in self._callbacks if c.accepted}
            ids = [int(sent.payload["id"]) for sent in self._sent.values()]
        return {i: first.get(i) for i in ids}

    def unacknowledged(self) -> int:
        """How many interactions sent so far have no accepted initial callback."""
        with self._lock:
            return sum(1 for sent in self._sent.values() if not sent.acknowledged)

    def message(self, message_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._messages[message_id])

    def original_message(self, interaction_id: int) -> dict[str, Any] | None:
        """The message an interaction answered with (or updated), as Discord holds it now."""
        with self._lock:
            token = _token(interaction_id)
            message_id = self._original.get(token)
            return copy.deepcopy(self._messages[message_id]) if message_id else None

    def followups(self, interaction_id: int) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(m) for t, m in self._followups if t == _token(interaction_id)]

    @property
    def role_grants(self) -> list[tuple[int, int, int]]:
        """(guild id, user id, role id) of every role added to a member."""
        with self._lock:
            return list(self._role_grants)

    @property
    def heartbeats(self) -> int:
        with self._lock:
            return self._heartbeats

    @property
    def gateway_log(self) -> list[dict[str, Any]]:
        """Every payload the client sent on the gateway."""
        with self._lock:
            return copy.deepcopy(self._gateway_log)

    @property
    def identifies(self) -> list[Identify]:
        """Every IDENTIFY, in the order they arrived."""
        with self._lock:
            return list(self._identifies)

    # Waiting from trio, by bounded polling of the records.

    async def wait_for(
        self,
        probe: Callable[[], T | None],
        what: str,
        timeout: float = 10,
        *,
        interval: float = 0.005,
    ) -> T:
        """Poll ``probe`` every ``interval`` seconds until it returns something."""
        with trio.move_on_after(timeout):
            while (found := probe()) is None:
                await trio.sleep(interval)
            return found
        raise AssertionError(f"the fake Discord saw no {what} within {timeout} s")

    async def wait_commands_synced(self, timeout: float = 10) -> list[dict[str, Any]]:
        """The global commands of the first ``PUT`` the client made."""
        puts = await self.wait_for(
            lambda: [cmds for scope, cmds in self.command_puts if scope == 0] or None,
            "command sync",
            timeout,
        )
        return puts[0]

    async def wait_callbacks(
        self, interaction_id: int, count: int = 1, timeout: float = 10
    ) -> list[Callback]:
        return await self.wait_for(
            lambda: found if len(found := self.callbacks(interaction_id)) >= count else None,
            f"{count} callback(s) for interaction {interaction_id}",
            timeout,
        )

    async def wait_shards_ready(self, count: int, timeout: float = 10) -> None:
        """Until ``count`` shards have been let in."""
        await self.wait_for(
            lambda: True if sum(i.accepted for i in self.identifies) >= count else None,
            f"{count} identified shard(s)",
            timeout,
        )

    def take_http_answer(self, payload: Mapping[str, Any], answer: Mapping[str, Any]) -> None:
        """Apply the answer an interactions endpoint gave in its HTTP response: Discord
        takes it as the interaction's initial callback."""
        with self._lock:
            self._sent.setdefault(payload["token"], _Sent(dict(payload), time.monotonic()))
        self._callback(dict(answer), str(payload["id"]), payload["token"])

    # Steering.

    def rate_limit(
        self,
        path_pattern: str,
        *,
        method: str | None = None,
        count: int = 1,
        retry_after: float = 0.25,
        is_global: bool = False,
    ) -> None:
        """Answer the next ``count`` requests whose path fully matches ``path_pattern``
        (and ``method``, if given) with a 429 asking to retry after ``retry_after``."""
        assert count >= 1 and retry_after > 0
        with self._lock:
            self._forced.append(
                _Forced429(re.compile(path_pattern), method, count, retry_after, is_global)
            )

    # Pushing gateway events.

    def send_interaction(self, payload: Mapping[str, Any]) -> int:
        """Push an INTERACTION_CREATE to the shard of its guild; return its id."""
        [sent] = self.send_interactions([payload])
        return sent

    def send_interactions(self, payloads: Iterable[Mapping[str, Any]]) -> list[int]:
        """Push many INTERACTION_CREATEs back to back, as a burst; return their ids."""
        payloads = [dict(p) for p in payloads]
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self._send_all(payloads), self._loop)
        future.result(30)
        return [int(p["id"]) for p in payloads]

    def send_commands(
        self, calls: Iterable[tuple[str, Mapping[str, Any] | None, int]]
    ) -> list[int]:
        """Build and push, as one burst, a slash command for each (name, options, user
        id); return their interaction ids. The payloads are built here, just before they
        are sent, so their snowflakes are as fresh as Discord's would be."""
        return self.send_interactions(
            [self.slash_command(name, options, user_id=user) for name, options, user in calls]
        )

    def send_dispatch(self, event: str, data: Mapping[str, Any], *, shard_id: int = 0) -> None:
        """Push any op 0 dispatch event to the client's session of ``shard_id``."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(
            self._dispatch(self._session(shard_id), event, data), self._loop
        )
        future.result(10)

    def shard_of(self, guild_id: int) -> int:
        """Discord's shard formula."""
        return (guild_id >> 22) % self.shards

    def slash_command(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        user_id: int = 42,
        permissions: int = 0,
        bots: Iterable[int] = (),
        interaction_id: int | None = None,
        guild_id: int = GUILD_ID,
    ) -> dict[str, Any]:
        """An application command interaction for a synced command, with option types
        taken from the synced definition and user options resolved."""
        with self._lock:
            synced = {c["name"]: c for c in self._commands.get(0, [])}
            assert name in synced, f"/{name} was never synced (synced: {sorted(synced)})"
            command_id = synced[name]["id"]
            types = {o["name"]: o["type"] for o in synced[name].get("options", [])}
        bots = set(bots)
        data_options, users, members = [], {}, {}
        for key, value in (options or {}).items():
            kind = types.get(key, 3)
            if kind == _OPTION_TYPE_USER:
                users[str(value)] = _user(int(value), bot=int(value) in bots)
                members[str(value)] = _member_fields(0)
                value = str(value)
            data_options.append({"name": key, "type": kind, "value": value})
        data: dict[str, Any] = {"id": command_id, "name": name, "type": 1}
        if data_options:
            data["options"] = data_options
        if users:
            data["resolved"] = {"users": users, "members": members}
        return self._interaction(2, data, user_id, permissions, interaction_id, guild_id)

    def unknown_command(self, name: str = "retired", *, user_id: int = 42) -> dict[str, Any]:
        """An application command interaction for a command the client never registered,
        as Discord delivers for a stale command a member's client still shows."""
        data = {"id": str(self._snowflake()), "name": name, "type": 1}
        return self._interaction(2, data, user_id, 0, None, GUILD_ID)

    def button_press(
        self,
        custom_id: str,
        *,
        message: Mapping[str, Any],
        user_id: int = 42,
        permissions: int = 0,
        interaction_id: int | None = None,
        guild_id: int = GUILD_ID,
    ) -> dict[str, Any]:
        """A component interaction: a press of button ``custom_id`` on ``message``."""
        payload = self._interaction(
            3,
            {"custom_id": custom_id, "component_type": 2},
            user_id,
            permissions,
            interaction_id,
            guild_id,
        )
        payload["message"] = dict(message)
        return payload

    def _interaction(
        self,
        kind: int,
        data: dict[str, Any],
        user_id: int,
        permissions: int,
        interaction_id: int | None,
        guild_id: int,
    ) -> dict[str, Any]:
        interaction_id = interaction_id or self._snowflake()
        return {
            "id": str(interaction_id),
            "application_id": str(APP_ID),
            "type": kind,
            "data": data,
            "guild_id": str(guild_id),
            "channel_id": str(CHANNEL_ID),
            "channel": {
                "id": str(CHANNEL_ID),
                "type": 0,
                "guild_id": str(guild_id),
                "name": "casino",
                "position": 0,
                "permission_overwrites": [],
                "nsfw": False,
                "parent_id": None,
            },
            "member": {"user": _user(user_id), **_member_fields(permissions)},
            "token": _token(interaction_id),
            "version": 1,
            "locale": "en-US",
            "guild_locale": "en-US",
            "app_permissions": str((1 << 41) - 1),
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild_id)},
            "context": 0,
        }

    def _snowflake(self) -> int:
        with self._lock:
            sequence = next(self._ids)
        return ((int(time.time() * 1000) - _DISCORD_EPOCH_MS) << 22) | (sequence & 0x3FFFFF)

    # Gateway.

    def _session(self, shard_id: int) -> _Session:
        for session in self._sessions:
            if session.shard_id == shard_id and not session.ws.closed:
                return session
        raise AssertionError(f"no client session of shard {shard_id} is identified")

    async def _send_all(self, payloads: list[dict[str, Any]]) -> None:
        for payload in payloads:
            session = self._session(self.shard_of(int(payload["guild_id"])))
            with self._lock:
                self._sent[payload["token"]] = _Sent(payload, time.monotonic())
            await self._dispatch(session, "INTERACTION_CREATE", payload)

    async def _dispatch(self, session: _Session, event: str, data: Mapping[str, Any]) -> None:
        if session.ws.closed:
            raise AssertionError("the client's gateway session is closed")
        session.sequence += 1
        frame = {"op": 0, "t": event, "s": session.sequence, "d": data}
        await session.ws.send_str(json.dumps(frame))

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session = _Session(ws)
        self._sessions.append(session)
        await ws.send_str(
            json.dumps({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
        )
        async for frame in ws:
            if frame.type is not WSMsgType.TEXT:
                continue
            payload = json.loads(frame.data)
            with self._lock:
                self._gateway_log.append(payload)
            if payload["op"] == 1:
                with self._lock:
                    self._heartbeats += 1
                await ws.send_str(json.dumps({"op": 11}))
            elif payload["op"] == 2:
                await self._identify(session, payload["d"])
            elif payload["op"] == 6:
                await self._resume(session, payload["d"])
        return ws

    async def _resume(self, session: _Session, data: Mapping[str, Any]) -> None:
        """A RESUME of a session the fake started is resumed; any other is invalid
        (op 9), and the client must identify afresh."""
        session_id = str(data.get("session_id"))
        with self._lock:
            known = {f"fake-session-{i.shard_id}" for i in self._identifies if i.accepted}
        if session_id in known:
            session.shard_id = int(session_id.rsplit("-", 1)[1])
            await self._dispatch(session, "RESUMED", {})
        else:
            await session.ws.send_str(json.dumps({"op": 9, "d": False}))

    async def _identify(self, session: _Session, data: Mapping[str, Any]) -> None:
        shard_id, shard_count = data.get("shard") or (0, 1)
        now = time.monotonic()
        bucket = shard_id % self.max_concurrency
        with self._lock:
            # A shard identifying again (a restarted client) is let in: only shards that
            # share a bucket are held apart, which is what a sharded client must get right.
            earlier = [
                i.at
                for i in self._identifies
                if i.accepted
                and i.shard_id != shard_id
                and i.shard_id % self.max_concurrency == bucket
            ]
        guilds = [g for g in self.guild_ids if (g >> 22) % self.shards == shard_id]
        close: tuple[int, str] | None = None
        if shard_count != self.shards or not 0 <= shard_id < shard_count:
            close = (4010, "Invalid shard.") if data.get("shard") else (4011, "Sharding required.")
        elif len(guilds) > _guilds_per_shard_max:
            close = (4011, "Sharding required.")
        elif earlier and now - max(earlier) < self.identify_interval_seconds:
            close = (4008, "Rate limited.")
        with self._lock:
            self._identifies.append(Identify(shard_id, shard_count, now, close is None))
        if close is not None:
            await session.ws.close(code=close[0], message=close[1].encode())
            return
        session.shard_id = shard_id
        await self._dispatch(
            session,
            "READY",
            {
                "v": 10,
                "user": _user(BOT_USER_ID, bot=True),
                "application": {"id": str(APP_ID), "flags": 0},
                "guilds": [{"id": str(g), "unavailable": True} for g in guilds],
                "session_id": f"fake-session-{shard_id}",
                "resume_gateway_url": f"ws://127.0.0.1:{self.port}/gateway-ws",
                "shard": [shard_id, shard_count],
            },
        )
        for guild_id in guilds:
            await self._dispatch(
                session, "GUILD_CREATE", _guild(guild_id, self.roles, self.bot_role_position)
            )

    # REST.

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        path = "/" + request.match_info["tail"]
        response = self._route(request.method, path, body, request.headers.get("Authorization"))
        with self._lock:
            self._requests.append(
                RecordedRequest(
                    request.method,
                    path,
                    dict(request.query),
                    body,
                    time.monotonic(),
                    response.status,
                )
            )
        return response

    def _route(self, method: str, path: str, body: Any, authorization: str | None) -> web.Response:
        if authorization == f"Bot {REFUSED_TOKEN}":
            # Discord answers a revoked or mistyped token with 401 on every route.
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        for index, (route_method, pattern, handler) in enumerate(self._routes):
            match = pattern.fullmatch(path)
            if match and route_method == method:
                # The interaction routes are bucketed per interaction (their token) and
                # exempt from the global limit, as on Discord.
                exempt = "/interactions/" in path or path.startswith("/webhooks/")
                major = match.group(1) if match.groups() else ""
                bucket = self._bucket(f"{index}:{major}")
                if (limited := self._limited(method, path, bucket, exempt)) is not None:
                    return limited
                response = handler(self, body, *match.groups())
                self._add_ratelimit_headers(response, bucket)
                return response
        with self._lock:
            self._unknown.append((method, path))
        response = _json({"message": "404: Not Found", "code": 0}, status=404)
        self._add_ratelimit_headers(response, self._bucket(f"unknown:{method} {path}"))
        return response

    def _bucket(self, key: str) -> _Bucket:
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                name = hashlib.sha1(key.encode()).hexdigest()[:16]
                bucket = self._buckets[key] = _Bucket(name)
            if now >= bucket.resets_at:
                bucket.used, bucket.resets_at = 0, now + self.bucket_window_seconds
            return bucket

    def _limited(
        self, method: str, path: str, bucket: _Bucket, exempt: bool
    ) -> web.Response | None:
        """A 429 when this request is over a limit or one was asked for, else None."""
        now = time.monotonic()
        with self._lock:
            for forced in self._forced:
                matches = forced.count and forced.pattern.fullmatch(path)
                if matches and forced.method in (None, method):
                    forced.count -= 1
                    return _too_many(bucket, self.bucket_limit, forced.retry_after, forced)
            if not exempt:
                if now >= self._global.resets_at:
                    self._global.used, self._global.resets_at = 0, now + 1.0
                if self._global.used >= self.global_per_second:
                    retry = self._global.resets_at - now
                    return _too_many(bucket, self.bucket_limit, retry, None, is_global=True)
                self._global.used += 1
            if bucket.used >= self.bucket_limit:
                return _too_many(bucket, self.bucket_limit, bucket.resets_at - now, None)
            bucket.used += 1
        return None

    def _add_ratelimit_headers(self, response: web.Response, bucket: _Bucket) -> None:
        with self._lock:
            remaining = max(0, self.bucket_limit - bucket.used)
            reset_after = max(0.0, bucket.resets_at - time.monotonic())
        _ratelimit_headers(response, bucket.name, self.bucket_limit, remaining, reset_after)

    def _me(self, body: Any) -> web.Response:
        return _json({**_user(BOT_USER_ID, bot=True), "verified": True, "mfa_enabled": False})

    def _application(self, body: Any) -> web.Response:
        return _json(
            {
                "id": str(APP_ID),
                "name": "Croupier",
                "icon": None,
                "description": "",
                "summary": "",
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "flags": 0,
                "owner": _user(BOT_USER_ID + 1),
                "team": None,
            }
        )

    def _gateway_url(self, body: Any) -> web.Response:
        return _json({"url": f"ws://127.0.0.1:{self.port}/gateway-ws"})

    def _gateway_bot(self, body: Any) -> web.Response:
        return _json(
            {
                "url": f"ws://127.0.0.1:{self.port}/gateway-ws",
                "shards": self.shards,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 1000,
                    "reset_after": 0,
                    "max_concurrency": self.max_concurrency,
                },
            }
        )

    def _list_commands(self, body: Any, app: str, guild: str | None = None) -> web.Response:
        with self._lock:
            return _json(self._commands.get(int(guild or 0), []))

    def _put_commands(self, body: Any, app: str, guild: str | None = None) -> web.Response:
        scope = int(guild or 0)
        with self._lock:
            known = {c["name"]: c["id"] for c in self._commands.get(scope, [])}
        stored = [
            {
                **command,
                "id": known.get(command["name"]) or str(self._snowflake()),
                "application_id": app,
                "version": str(self._snowflake()),
            }
            for command in body
        ]
        with self._lock:
            self._commands[scope] = stored
            self._command_puts.append((scope, copy.deepcopy(body)))
        return _json(stored)

    def _callback(self, body: Any, interaction_id: str, token: str) -> web.Response:
        now = time.monotonic()
        with self._lock:
            sent = self._sent.get(token)
            elapsed = now - sent.at if sent is not None else 0.0
            if sent is None or elapsed > self.deadline_seconds:
                refusal: tuple[int, str] | None = (UNKNOWN_INTERACTION, "Unknown interaction")
            elif sent.acknowledged:
                refusal = (ALREADY_ACKNOWLEDGED, "Interaction has already been acknowledged.")
            else:
                refusal = None
                sent.acknowledged = True
            self._callbacks.append(
                Callback(
                    int(interaction_id),
                    body["type"],
                    body.get("data") or {},
                    refusal is None,
                    elapsed,
                    refusal[0] if refusal else None,
                )
            )
        if refusal is not None:
            status = 404 if refusal[0] == UNKNOWN_INTERACTION else 400
            return _json({"message": refusal[1], "code": refusal[0]}, status=status)
        assert sent is not None
        data = body.get("data") or {}
        if body["type"] in (_CALLBACK_MESSAGE, _CALLBACK_DEFERRED_MESSAGE):
            self._new_message(token, data, original=True)
        elif body["type"] in (_CALLBACK_UPDATE, _CALLBACK_DEFERRED_UPDATE):
            message_id = sent.payload["message"]["id"]
            with self._lock:
                self._original[token] = message_id
                if body["type"] == _CALLBACK_UPDATE:
                    self._messages[message_id] = _edited(self._messages[message_id], data)
        return web.Response(status=204)

    def _webhook_refusal(self, token: str) -> web.Response | None:
        """Why a follow-up or edit with this interaction token is refused, if it is."""
        with self._lock:
            sent = self._sent.get(token)
            if sent is None or not sent.acknowledged:
                return _json({"message": "Unknown Webhook", "code": UNKNOWN_WEBHOOK}, status=404)
            if time.monotonic() - sent.at > self.token_seconds:
                return _json(
                    {"message": "Invalid Webhook Token", "code": INVALID_WEBHOOK_TOKEN},
                    status=401,
                )
        return None

    def _get_original(self, body: Any, app: str, token: str) -> web.Response:
        if (refusal := self._webhook_refusal(token)) is not None:
            return refusal
        with self._lock:
            message_id = self._original.get(token)
            message = self._messages.get(message_id) if message_id else None
        if message is None:
            return _json({"message": "Unknown Message", "code": 10008}, status=404)
        return _json(message)

    def _patch_original(self, body: Any, app: str, token: str) -> web.Response:
        if (refusal := self._webhook_refusal(token)) is not None:
            return refusal
        with self._lock:
            message_id = self._original.get(token)
            if message_id is None:
                return _json({"message": "Unknown Message", "code": 10008}, status=404)
            self._messages[message_id] = _edited(self._messages[message_id], body)
            return _json(self._messages[message_id])

    def _delete_original(self, body: Any, app: str, token: str) -> web.Response:
        if (refusal := self._webhook_refusal(token)) is not None:
            return refusal
        with self._lock:
            message_id = self._original.pop(token, None)
            if message_id is None:
                return _json({"message": "Unknown Message", "code": 10008}, status=404)
            del self._messages[message_id]
        return web.Response(status=204)

    def _followup(self, body: Any, app: str, token: str) -> web.Response:
        if (refusal := self._webhook_refusal(token)) is not None:
            return refusal
        message = self._new_message(token, body, original=False)
        with self._lock:
            self._followups.append((token, message))
            return _json(message)

    def _add_role(self, body: Any, guild: str, user: str, role: str) -> web.Response:
        if self.roles.get(int(role), -1) >= self.bot_role_position:
            # Discord refuses to grant a role at or above the bot's own highest role.
            return _json(
                {"message": "Missing Permissions", "code": MISSING_PERMISSIONS}, status=403
            )
        with self._lock:
            self._role_grants.append((int(guild), int(user), int(role)))
        return web.Response(status=204)

    def _new_message(
        self, token: str, data: Mapping[str, Any], *, original: bool
    ) -> dict[str, Any]:
        message_id = str(self._snowflake())
        message: dict[str, Any] = {
            "id": message_id,
            "channel_id": str(CHANNEL_ID),
            "guild_id": str(GUILD_ID),
            "author": _user(BOT_USER_ID, bot=True),
            "content": data.get("content") or "",
            "timestamp": datetime.now(UTC).isoformat(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": data.get("embeds") or [],
            "components": data.get("components") or [],
            "pinned": False,
            "type": 20,
            "flags": int(data.get("flags") or 0),
            "application_id": str(APP_ID),
            "webhook_id": str(APP_ID),
        }
        with self._lock:
            self._messages[message_id] = message
            if original:
                self._original[token] = message_id
        return message

    _APP = r"([0-9]+)"
    _routes: ClassVar[tuple[tuple[str, re.Pattern[str], Callable[..., web.Response]], ...]] = (
        ("GET", re.compile(r"/users/@me"), _me),
        ("GET", re.compile(r"/oauth2/applications/@me"), _application),
        ("GET", re.compile(r"/gateway"), _gateway_url),
        ("GET", re.compile(r"/gateway/bot"), _gateway_bot),
        ("GET", re.compile(rf"/applications/{_APP}/commands"), _list_commands),
        ("PUT", re.compile(rf"/applications/{_APP}/commands"), _put_commands),
        ("GET", re.compile(rf"/applications/{_APP}/guilds/([0-9]+)/commands"), _list_commands),
        ("PUT", re.compile(rf"/applications/{_APP}/guilds/([0-9]+)/commands"), _put_commands),
        ("POST", re.compile(r"/interactions/([0-9]+)/([^/]+)/callback"), _callback),
        ("GET", re.compile(rf"/webhooks/{_APP}/([^/]+)/messages/@original"), _get_original),
        ("PATCH", re.compile(rf"/webhooks/{_APP}/([^/]+)/messages/@original"), _patch_original),
        ("DELETE", re.compile(rf"/webhooks/{_APP}/([^/]+)/messages/@original"), _delete_original),
        ("POST", re.compile(rf"/webhooks/{_APP}/([^/]+)"), _followup),
        ("PUT", re.compile(r"/guilds/([0-9]+)/members/([0-9]+)/roles/([0-9]+)"), _add_role),
    )


def _too_many(
    bucket: _Bucket,
    limit: int,
    retry_after: float,
    forced: _Forced429 | None,
    *,
    is_global: bool = False,
) -> web.Response:
    is_global = is_global or (forced is not None and forced.is_global)
    response = _json(
        {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global},
        status=429,
    )
    _ratelimit_headers(response, bucket.name, limit, 0, retry_after)
    response.headers["Retry-After"] = f"{retry_after:.3f}"
    response.headers["X-RateLimit-Scope"] = "global" if is_global else "user"
    if is_global:
        response.headers["X-RateLimit-Global"] = "true"
    return response


def _ratelimit_headers(
    response: web.Response, bucket: str, limit: int, remaining: int, reset_after: float
) -> None:
    response.headers["X-RateLimit-Limit"] = str(limit)
    response.headers["X-RateLimit-Remaining"] = str(remaining)
    response.headers["X-RateLimit-Reset"] = f"{time.time() + reset_after:.3f}"
    response.headers["X-RateLimit-Reset-After"] = f"{reset_after:.3f}"
    response.headers["X-RateLimit-Bucket"] = bucket


def _json(value: Any, status: int = 200) -> web.Response:
    # interactions.py decodes a body as JSON only when the content type is exactly
    # "application/json"; aiohttp's json_response would add "; charset=utf-8".
    response = web.Response(body=json.dumps(value).encode(), status=status)
    response.headers["Content-Type"] = "application/json"
    return response


def _token(interaction_id: int) -> str:
    return f"token-{interaction_id}"


def _edited(message: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    edited = dict(message)
    for key in ("content", "embeds", "components", "flags"):
        if key in data and data[key] is not None:
            edited[key] = data[key]
    edited["edited_timestamp"] = datetime.now(UTC).isoformat()
    return edited


def _user(user_id: int, *, bot: bool = False) -> dict[str, Any]:
    return {
        "id": str(user_id),
        "username": f"user{user_id}",
        "discriminator": "0",
        "global_name": None,
        "avatar": None,
        "bot": bot,
        "public_flags": 0,
    }


def _member_fields(permissions: int) -> dict[str, Any]:
    return {
        "roles": [],
        "joined_at": "2024-01-01T00:00:00+00:00",
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "nick": None,
        "avatar": None,
        "permissions": str(permissions),
    }


def _role(role_id: int, name: str, position: int, *, bot: bool = False) -> dict[str, Any]:
    role: dict[str, Any] = {
        "id": str(role_id),
        "name": name,
        "color": 0,
        "hoist": False,
        "position": position,
        "permissions": str(1 << 28) if bot else "0",
        "managed": bot,
        "mentionable": False,
        "flags": 0,
    }
    if bot:
        role["tags"] = {"bot_id": str(BOT_USER_ID)}
    return role


def _guild(guild_id: int, roles: Mapping[int, int], bot_role_position: int) -> dict[str, Any]:
    """A GUILD_CREATE: the guild's roles (``@everyone``, the bot's, ``roles``) and the bot's
    own member, so the client knows the bot's highest role."""
    bot_member = {"user": _user(BOT_USER_ID, bot=True), **_member_fields(0)}
    bot_member["roles"] = [str(BOT_ROLE_ID)]
    return {
        "id": str(guild_id),
        "name": "Fake Casino",
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "owner_id": str(BOT_USER_ID + 1),
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "roles": [
            _role(guild_id, "@everyone", 0),
            _role(BOT_ROLE_ID, "Croupier", bot_role_position, bot=True),
            *(_role(role_id, f"role{role_id}", position) for role_id, position in roles.items()),
        ],
        "emojis": [],
        "features": [],
        "mfa_level": 0,
        "application_id": None,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "vanity_url_code": None,
        "description": None,
        "banner": None,
        "premium_tier": 0,
        "preferred_locale": "en-US",
        "public_updates_channel_id": None,
        "nsfw_level": 0,
        "premium_progress_bar_enabled": False,
        "stickers": [],
        "joined_at": "2024-01-01T00:00:00+00:00",
        "large": False,
        "unavailable": False,
        "member_count": 2,
        "voice_states": [],
        "members": [bot_member],
        "channels": [],
        "threads": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
    }
