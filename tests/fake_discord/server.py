"""A fake Discord: REST API and gateway websocket on 127.0.0.1, for end-to-end tests.

It runs an aiohttp server on its own asyncio loop in its own thread, so it is independent
of the client under test (which runs asyncio inside trio). Tests talk to it from trio:
they push gateway events with ``send_interaction`` and read what the client did from
thread-safe records, waiting for them with bounded polling.

It speaks what interactions.py 5.16 needs and records everything, including requests to
routes it does not know (answered 404), so a route the client starts using shows up in
``unknown_routes`` instead of passing silently.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import trio
from aiohttp import WSMsgType, web

T = TypeVar("T")

APP_ID = 900_000_000_000_000_001
BOT_USER_ID = 900_000_000_000_000_002
GUILD_ID = 900_000_000_000_000_003
# A token the fake refuses, as Discord does a revoked one.
REFUSED_TOKEN = "refused-token"
CHANNEL_ID = 900_000_000_000_000_004

_DISCORD_EPOCH_MS = 1_420_070_400_000
_EPHEMERAL_FLAG = 1 << 6
_CALLBACK_MESSAGE = 4
_CALLBACK_DEFERRED_MESSAGE = 5
_CALLBACK_DEFERRED_UPDATE = 6
_CALLBACK_UPDATE = 7
_OPTION_TYPE_USER = 6


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: Mapping[str, str]
    body: Any


@dataclass(frozen=True)
class Callback:
    """One ``POST /interactions/{id}/{token}/callback``; ``accepted`` is False for a second
    answer to the same interaction, which Discord refuses."""

    interaction_id: int
    type: int
    data: Mapping[str, Any]
    accepted: bool


class FakeDiscord:
    """Start with ``with FakeDiscord() as fake:``; point the client at ``fake.api_url``."""

    def __init__(self, *, heartbeat_interval_ms: int = 250, guild_ids: Iterable[int] = (GUILD_ID,)):
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.guild_ids = tuple(guild_ids)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._requests: list[RecordedRequest] = []
        self._unknown: list[tuple[str, str]] = []
        self._commands: dict[int, list[dict[str, Any]]] = {}
        self._command_puts: list[tuple[int, list[dict[str, Any]]]] = []
        self._callbacks: list[Callback] = []
        self._interactions: dict[str, dict[str, Any]] = {}
        self._messages: dict[str, dict[str, Any]] = {}
        self._original: dict[str, str] = {}
        self._followups: list[tuple[str, dict[str, Any]]] = []
        self._role_grants: list[tuple[int, int, int]] = []
        self._gateway_log: list[dict[str, Any]] = []
        self._heartbeats = 0
        self._sequence = 0
        self._ws: web.WebSocketResponse | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

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
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        app.router.add_route("*", "/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False)
        loop.run_until_complete(self._runner.setup())
        loop.run_until_complete(web.SockSite(self._runner, sock).start())
        started.set()
        loop.run_forever()
        loop.close()

    async def _shutdown(self) -> None:
        if self._ws is not None:
            await self._ws.close()
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

    # Waiting from trio, by bounded polling of the records.

    async def wait_for(self, probe: Callable[[], T | None], what: str, timeout: float = 10) -> T:
        with trio.move_on_after(timeout):
            while (found := probe()) is None:
                await trio.sleep(0.005)
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

    def take_http_answer(self, payload: Mapping[str, Any], answer: Mapping[str, Any]) -> None:
        """Apply the answer an interactions endpoint gave in its HTTP response: Discord
        takes it as the interaction's initial callback."""
        with self._lock:
            self._interactions[payload["token"]] = dict(payload)
        self._callback(dict(answer), str(payload["id"]), payload["token"])

    # Pushing gateway events.

    def send_interaction(self, payload: Mapping[str, Any]) -> int:
        """Push an INTERACTION_CREATE; return its interaction id."""
        with self._lock:
            self._interactions[payload["token"]] = dict(payload)
        self.send_dispatch("INTERACTION_CREATE", payload)
        return int(payload["id"])

    def send_dispatch(self, event: str, data: Mapping[str, Any]) -> None:
        """Push any op 0 dispatch event to the connected client."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self._dispatch(event, data), self._loop)
        future.result(10)

    def slash_command(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        user_id: int = 42,
        permissions: int = 0,
        bots: Iterable[int] = (),
        interaction_id: int | None = None,
    ) -> dict[str, Any]:
        """An application command interaction for a synced command, with option types
        taken from the synced definition and user options resolved."""
        synced = {c["name"]: c for c in self.commands()}
        assert name in synced, f"/{name} was never synced (synced: {sorted(synced)})"
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
        data: dict[str, Any] = {"id": synced[name]["id"], "name": name, "type": 1}
        if data_options:
            data["options"] = data_options
        if users:
            data["resolved"] = {"users": users, "members": members}
        return self._interaction(2, data, user_id, permissions, interaction_id)

    def button_press(
        self,
        custom_id: str,
        *,
        message: Mapping[str, Any],
        user_id: int = 42,
        permissions: int = 0,
        interaction_id: int | None = None,
    ) -> dict[str, Any]:
        """A component interaction: a press of button ``custom_id`` on ``message``."""
        payload = self._interaction(
            3, {"custom_id": custom_id, "component_type": 2}, user_id, permissions, interaction_id
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
    ) -> dict[str, Any]:
        interaction_id = interaction_id or self._snowflake()
        return {
            "id": str(interaction_id),
            "application_id": str(APP_ID),
            "type": kind,
            "data": data,
            "guild_id": str(GUILD_ID),
            "channel_id": str(CHANNEL_ID),
            "channel": {
                "id": str(CHANNEL_ID),
                "type": 0,
                "guild_id": str(GUILD_ID),
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
            "authorizing_integration_owners": {"0": str(GUILD_ID)},
            "context": 0,
        }

    def _snowflake(self) -> int:
        with self._lock:
            sequence = next(self._ids)
        return ((int(time.time() * 1000) - _DISCORD_EPOCH_MS) << 22) | (sequence & 0x3FFFFF)

    # Gateway.

    async def _dispatch(self, event: str, data: Mapping[str, Any]) -> None:
        if self._ws is None or self._ws.closed:
            raise AssertionError("no client is connected to the fake gateway")
        self._sequence += 1
        await self._ws.send_str(json.dumps({"op": 0, "t": event, "s": self._sequence, "d": data}))

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws = ws
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
                await self._ready()
            elif payload["op"] == 6:
                await self._dispatch("RESUMED", {})
        return ws

    async def _ready(self) -> None:
        await self._dispatch(
            "READY",
            {
                "v": 10,
                "user": _user(BOT_USER_ID, bot=True),
                "application": {"id": str(APP_ID), "flags": 0},
                "guilds": [{"id": str(g), "unavailable": True} for g in self.guild_ids],
                "session_id": "fake-session",
                "resume_gateway_url": f"ws://127.0.0.1:{self.port}/gateway-ws",
                "shard": [0, 1],
            },
        )
        for guild_id in self.guild_ids:
            await self._dispatch("GUILD_CREATE", _guild(guild_id))

    # REST.

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        path = "/" + request.match_info["tail"]
        with self._lock:
            self._requests.append(RecordedRequest(request.method, path, dict(request.query), body))
        if request.headers.get("Authorization") == f"Bot {REFUSED_TOKEN}":
            # Discord answers a revoked or mistyped token with 401 on every route.
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match and method == request.method:
                return handler(self, body, *match.groups())
        with self._lock:
            self._unknown.append((request.method, path))
        return _json({"message": "404: Not Found", "code": 0}, status=404)

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
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 1000,
                    "reset_after": 0,
                    "max_concurrency": 16,
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
        with self._lock:
            interaction = self._interactions.get(token)
            accepted = not any(c.interaction_id == int(interaction_id) for c in self._callbacks)
            self._callbacks.append(
                Callback(int(interaction_id), body["type"], body.get("data") or {}, accepted)
            )
        if interaction is None:
            return _json({"message": "Unknown interaction", "code": 10062}, status=404)
        if not accepted:
            return _json(
                {"message": "Interaction has already been acknowledged.", "code": 40060},
                status=400,
            )
        data = body.get("data") or {}
        if body["type"] in (_CALLBACK_MESSAGE, _CALLBACK_DEFERRED_MESSAGE):
            self._new_message(token, data, original=True)
        elif body["type"] in (_CALLBACK_UPDATE, _CALLBACK_DEFERRED_UPDATE):
            message_id = interaction["message"]["id"]
            with self._lock:
                self._original[token] = message_id
                if body["type"] == _CALLBACK_UPDATE:
                    self._messages[message_id] = _edited(self._messages[message_id], data)
        return web.Response(status=204)

    def _get_original(self, body: Any, app: str, token: str) -> web.Response:
        with self._lock:
            message_id = self._original.get(token)
            message = self._messages.get(message_id) if message_id else None
        if message is None:
            return _json({"message": "Unknown Message", "code": 10008}, status=404)
        return _json(message)

    def _patch_original(self, body: Any, app: str, token: str) -> web.Response:
        with self._lock:
            message_id = self._original.get(token)
            if message_id is None:
                return _json({"message": "Unknown Message", "code": 10008}, status=404)
            self._messages[message_id] = _edited(self._messages[message_id], body)
            return _json(self._messages[message_id])

    def _delete_original(self, body: Any, app: str, token: str) -> web.Response:
        with self._lock:
            message_id = self._original.pop(token, None)
            if message_id is None:
                return _json({"message": "Unknown Message", "code": 10008}, status=404)
            del self._messages[message_id]
        return web.Response(status=204)

    def _followup(self, body: Any, app: str, token: str) -> web.Response:
        message = self._new_message(token, body, original=False)
        with self._lock:
            self._followups.append((token, message))
        return _json(message)

    def _add_role(self, body: Any, guild: str, user: str, role: str) -> web.Response:
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
        return copy.deepcopy(message)

    _APP = r"([0-9]+)"
    _routes: tuple[tuple[str, re.Pattern[str], Callable[..., web.Response]], ...] = (
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


def _guild(guild_id: int) -> dict[str, Any]:
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
            {
                "id": str(guild_id),
                "name": "@everyone",
                "color": 0,
                "hoist": False,
                "position": 0,
                "permissions": "0",
                "managed": False,
                "mentionable": False,
                "flags": 0,
            }
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
        "members": [],
        "channels": [],
        "threads": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
    }
