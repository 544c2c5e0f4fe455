"""The HTTP API served for real on 127.0.0.1 over a running economy, with tokens of
every kind, for the API tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio
from starlette.applications import Starlette

from actors import ApiTokens
from bot.http import bound_port, open_http_listeners, serve_http
from bot.http.api import API_PREFIX, HttpApi, json_error_handlers
from limits import ApiLimits
from tests.economy_fixtures import Running, running_economy

GUILD, OTHER_GUILD = 1, 2
ADMIN = 7


@dataclass
class ApiServer:
    eco: Running
    api: HttpApi
    client: httpx.AsyncClient
    base: str
    # Token secrets by kind: read and write of GUILD, write of OTHER_GUILD, a revoked
    # write token of GUILD.
    tokens: dict[str, str]

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = "write",
        key: str | None = None,
        body: Any = None,
        headers: dict[str, Any] | None = None,
    ) -> httpx.Response:
        sent: dict[str, Any] = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {self.tokens.get(token, token)}"
        if key is not None:
            sent["Idempotency-Key"] = key
        return await self.client.request(
            method, self.base + path, headers=sent, json=body if body is not None else None
        )


async def make_tokens(tokens: ApiTokens) -> dict[str, str]:
    made = {}
    for kind, guild, scope in (
        ("read", GUILD, "read"),
        ("write", GUILD, "write"),
        ("other", OTHER_GUILD, "write"),
        ("revoked", GUILD, "write"),
    ):
        created = await tokens.create(
            guild, name=kind, scope=scope, created_by=ADMIN, key=f"setup:{kind}"
        )
        made[kind] = created.secret
    await tokens.revoke(GUILD, "revoked")
    return made


@asynccontextmanager
async def api_server(
    data_dir: Path, *, limits: ApiLimits | None = None, clock: Any = None
) -> AsyncIterator[ApiServer]:
    """The API app on the one HTTP stack, on a free port of 127.0.0.1."""
    async with running_economy(data_dir) as eco:
        extra = {} if clock is None else {"clock": clock}
        api = HttpApi(eco.economy, limits=limits, **extra)
        tokens = await make_tokens(api.tokens)
        app: Any = Starlette(routes=[api.mount()], exception_handlers=json_error_handlers())
        app.router.redirect_slashes = False
        listeners = await open_http_listeners("127.0.0.1", 0)
        base = f"http://127.0.0.1:{bound_port(listeners)}{API_PREFIX}"
        async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=10) as client:
            await nursery.start(partial(serve_http, app, listeners))
            yield ApiServer(eco, api, client, base, tokens)
            nursery.cancel_scope.cancel()
