"""The fake Discord's gateway: the websocket a client identifies on, and events pushed to it.

It checks what Discord checks of a sharded client (a valid ``shard`` in every IDENTIFY
once there is more than one, shards of one ``max_concurrency`` bucket identifying
``identify_interval_seconds`` apart, RESUMEs only of sessions it started) and pushes the
READY, GUILD_CREATE and INTERACTION_CREATE events tests send, each to the session of the
shard its guild belongs to.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import WSMsgType, web

from tests.fake_discord.objects import APP_ID, BOT_USER_ID, guild_create, user_object
from tests.fake_discord.state import FakeDiscordState, Identify, Sent, Session

_guilds_per_shard_max = 2500


class GatewayPart(FakeDiscordState):
    """The gateway's records, the pushing of events, and the websocket's handler."""

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

    async def wait_shards_ready(self, count: int, timeout: float = 10) -> None:
        """Until ``count`` shards have been let in."""
        await self.wait_for(
            lambda: True if sum(i.accepted for i in self.identifies) >= count else None,
            f"{count} identified shard(s)",
            timeout,
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

    # The websocket.

    def _session(self, shard_id: int) -> Session:
        for session in self._sessions:
            if session.shard_id == shard_id and not session.ws.closed:
                return session
        raise AssertionError(f"no client session of shard {shard_id} is identified")

    async def _send_all(self, payloads: list[dict[str, Any]]) -> None:
        for payload in payloads:
            session = self._session(self.shard_of(int(payload["guild_id"])))
            with self._lock:
                self._sent[payload["token"]] = Sent(payload, time.monotonic())
            await self._dispatch(session, "INTERACTION_CREATE", payload)

    async def _dispatch(self, session: Session, event: str, data: Mapping[str, Any]) -> None:
        if session.ws.closed:
            raise AssertionError("the client's gateway session is closed")
        session.sequence += 1
        frame = {"op": 0, "t": event, "s": session.sequence, "d": data}
        await session.ws.send_str(json.dumps(frame))

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session = Session(ws)
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

    async def _resume(self, session: Session, data: Mapping[str, Any]) -> None:
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

    async def _identify(self, session: Session, data: Mapping[str, Any]) -> None:
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
                "user": user_object(BOT_USER_ID, bot=True),
                "application": {"id": str(APP_ID), "flags": 0},
                "guilds": [{"id": str(g), "unavailable": True} for g in guilds],
                "session_id": f"fake-session-{shard_id}",
                "resume_gateway_url": f"ws://127.0.0.1:{self.port}/gateway-ws",
                "shard": [shard_id, shard_count],
            },
        )
        for guild_id in guilds:
            await self._dispatch(
                session, "GUILD_CREATE", guild_create(guild_id, self.roles, self.bot_role_position)
            )
