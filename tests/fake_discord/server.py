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
- a role at or above the bot's highest role cannot be granted (403, code 50013);
- bans, role removals, channel messages with ``enforce_nonce`` and DMs as Discord answers
  them, and ``GUILD_BAN_REMOVE`` when a ban is lifted (``guild_rest.py``).

The fake is one object made of parts that share its records (``state.py``): the
gateway (``gateway.py``), the REST routing and rate limits (``rest.py``), interaction
callbacks and webhooks (``interactions.py``) and guild routes (``guild.py``), with the
Discord objects they answer with in ``objects.py``. This module puts them together and
runs them on a thread of their own.

The public methods and records are what tests and ``croupier bench discord`` use;
keep them stable.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from tests.fake_discord import guild, guild_rest, interactions, rest
from tests.fake_discord.gateway import GatewayPart
from tests.fake_discord.guild import GuildPart
from tests.fake_discord.guild_rest import GuildRestPart
from tests.fake_discord.interactions import InteractionsPart
from tests.fake_discord.rest import RestPart


class FakeDiscord(GatewayPart, RestPart, InteractionsPart, GuildRestPart, GuildPart):
    """Start with ``with FakeDiscord() as fake:``; point the client at ``fake.api_url``.

    Its settings are the fields of ``FakeDiscordState``.
    """

    _routes = rest.ROUTES + interactions.ROUTES + guild_rest.ROUTES + guild.ROUTES

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

    def send_commands(
        self, calls: Iterable[tuple[str, Mapping[str, Any] | None, int]]
    ) -> list[int]:
        """Build and push, as one burst, a slash command for each (name, options, user
        id); return their interaction ids. The payloads are built here, just before they
        are sent, so their snowflakes are as fresh as Discord's would be."""
        return self.send_interactions(
            [self.slash_command(name, options, user_id=user) for name, options, user in calls]
        )
