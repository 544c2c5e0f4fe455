"""The HTTP API at ``/api/v1``: balances, the leaderboard, history, inventories and the
shop of one guild, for the guild's own tools.

Every request carries ``Authorization: Bearer <token>``, a token made in the guild with
``/api-token-create``; it works on that guild only (another guild: 403), a ``read``
token on the GET routes only (403 elsewhere), and a made-up or revoked one not at all
(401). Each token has its own rate limit (a token bucket), shown on every answer in
``X-RateLimit-Limit`` (the burst), ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset``
(seconds until the bucket is full again); past it, 429 with ``retry_after``.

Every mutating request needs an ``Idempotency-Key`` header. The first answer to a key is
stored (keyed by the guild and the key, with a fingerprint of the method, path and
body): a repeat with the same request gets that answer again and moves nothing
(``Idempotent-Replayed: true``), a repeat with another request is refused with 409
``id_reused``, and a repeat that arrives while the first is still running waits for its
answer. Transient refusals (429, 503, 500) are not stored, so a retry can go through.
The economy sees the key as ``api:<guild>:<key>``, so its own idempotency holds even if
the stored answer were lost.

Values are parsed at this boundary by ``bot.inputs`` (``snowflake``, ``whole_number``,
``clean_text``, ``json_object``), as for every transport; a refusal is 400 with the
field named. Errors are JSON ``{"code", "message"}`` with the console's codes. All
changes go through the ``Economy`` API and are recorded in the audit log. Ids are
strings in answers (they do not fit a JavaScript number) and accepted as either.
The routes are described by ``openapi.json`` (``bot.http.openapi``).

This module holds the route table; the request machinery is ``bot.http.api_base``, the
handlers ``api_members`` and ``api_shop``.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from bot.http.api_base import Handler, Operation, json_error_handlers
from bot.http.api_members import MemberRoutes
from bot.http.api_shop import ShopRoutes
from bot.http.openapi import openapi_document

__all__ = ["API_PREFIX", "HttpApi", "json_error_handlers"]

API_PREFIX = "/api/v1"


class HttpApi(MemberRoutes, ShopRoutes):
    """The API's routes over one economy, token store, audit log and answer store."""

    def routes(self) -> list[Route]:
        users = "/guilds/{guild}/users"
        items = "/guilds/{guild}/items"
        # (method, path, whether it changes anything, the query parameters it takes).
        table: list[tuple[str, str, bool, tuple[str, ...], Handler]] = [
            ("GET", users + "/{user}", False, (), self._get_user),
            ("PATCH", users + "/{user}", True, (), self._patch_user),
            ("PUT", users + "/{user}", True, (), self._put_user),
            ("GET", users, False, ("limit", "offset"), self._leaderboard),
            ("GET", users + "/{user}/history", False, ("page",), self._history),
            ("GET", users + "/{user}/inventory", False, (), self._inventory),
            ("GET", items, False, ("include_retired",), self._items),
            ("POST", items, True, (), self._create_item),
            ("PATCH", items + "/{item}", True, (), self._edit_item),
            ("DELETE", items + "/{item}", True, (), self._retire_item),
        ]
        by_path: dict[str, dict[str, Operation]] = {}
        for method, path, write, query, handler in table:
            by_path.setdefault(path, {})[method] = Operation(write, query, handler)
        routes = [Route("/openapi.json", self._openapi_route, methods=["GET"])]
        for path, methods in by_path.items():
            routes.append(Route(path, self._endpoint(methods), methods=list(methods)))
        return routes

    def mount(self) -> Mount:
        """The routes under ``/api/v1``, for an app whose error handlers are
        ``json_error_handlers`` (one Starlette app, so one middleware stack per request)."""
        return Mount(API_PREFIX, routes=self.routes())

    async def _openapi_route(self, request: Request) -> Response:
        if self._openapi is None:
            document = openapi_document(self.economy.limits, self.limits)
            self._openapi = json.dumps(document).encode()
        return Response(self._openapi, media_type="application/json")
