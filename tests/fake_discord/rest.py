"""The fake Discord's REST surface: routing, rate limits, and the client's start-up routes.

Every request is recorded; one to a route the fake does not know is answered 404 and
listed in ``unknown_routes``, so a route the client starts using shows up instead of
passing silently. Every response carries Discord's rate-limit headers; buckets, the
global limit (which the interaction routes are exempt from) and 429s a test asks for
with ``rate_limit`` are enforced here, before a route's handler runs. The routes of the
other parts (interactions, guilds) join this module's in ``FakeDiscord``'s table.
"""

from __future__ import annotations

import copy
import hashlib
import re
import time
from typing import Any, ClassVar

from aiohttp import web

from tests.fake_discord.objects import (
    APP_ID,
    BOT_USER_ID,
    REFUSED_TOKEN,
    json_response,
    user_object,
)
from tests.fake_discord.state import Bucket, FakeDiscordState, Forced429, RecordedRequest, Route


class RestPart(FakeDiscordState):
    """Routing and rate limiting of every REST request, and the client's start-up routes."""

    # The whole route table, in the order paths are matched; FakeDiscord sets it from
    # every part's routes.
    _routes: ClassVar[tuple[Route, ...]] = ()

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

    async def wait_commands_synced(self, timeout: float = 10) -> list[dict[str, Any]]:
        """The global commands of the first ``PUT`` the client made."""
        puts = await self.wait_for(
            lambda: [cmds for scope, cmds in self.command_puts if scope == 0] or None,
            "command sync",
            timeout,
        )
        return puts[0]

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
                Forced429(re.compile(path_pattern), method, count, retry_after, is_global)
            )

    # Routing.

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
                    {k: v for k, v in request.headers.items() if k.lower().startswith("x-audit")},
                )
            )
        return response

    def _route(self, method: str, path: str, body: Any, authorization: str | None) -> web.Response:
        if authorization == f"Bot {REFUSED_TOKEN}":
            # Discord answers a revoked or mistyped token with 401 on every route.
            return json_response({"message": "401: Unauthorized", "code": 0}, status=401)
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
        response = json_response({"message": "404: Not Found", "code": 0}, status=404)
        self._add_ratelimit_headers(response, self._bucket(f"unknown:{method} {path}"))
        return response

    def _bucket(self, key: str) -> Bucket:
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                name = hashlib.sha1(key.encode()).hexdigest()[:16]
                bucket = self._buckets[key] = Bucket(name)
            if now >= bucket.resets_at:
                bucket.used, bucket.resets_at = 0, now + self.bucket_window_seconds
            return bucket

    def _limited(self, method: str, path: str, bucket: Bucket, exempt: bool) -> web.Response | None:
        """A 429 when this request is over a limit or one was asked for, else None."""
        now = time.monotonic()
        with self._lock:
            for forced in self._forced:
                matches = forced.count and forced.pattern.fullmatch(path)
                if matches and forced.method in (None, method):
                    forced.count -= 1
                    return too_many(bucket, self.bucket_limit, forced.retry_after, forced)
            if not exempt:
                if now >= self._global.resets_at:
                    self._global.used, self._global.resets_at = 0, now + 1.0
                if self._global.used >= self.global_per_second:
                    retry = self._global.resets_at - now
                    return too_many(bucket, self.bucket_limit, retry, None, is_global=True)
                self._global.used += 1
            if bucket.used >= self.bucket_limit:
                return too_many(bucket, self.bucket_limit, bucket.resets_at - now, None)
            bucket.used += 1
        return None

    def _add_ratelimit_headers(self, response: web.Response, bucket: Bucket) -> None:
        with self._lock:
            remaining = max(0, self.bucket_limit - bucket.used)
            reset_after = max(0.0, bucket.resets_at - time.monotonic())
        ratelimit_headers(response, bucket.name, self.bucket_limit, remaining, reset_after)

    def _me(self, body: Any) -> web.Response:
        return json_response(
            {**user_object(BOT_USER_ID, bot=True), "verified": True, "mfa_enabled": False}
        )

    def _application(self, body: Any) -> web.Response:
        return json_response(
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
                "owner": user_object(BOT_USER_ID + 1),
                "team": None,
            }
        )

    def _gateway_url(self, body: Any) -> web.Response:
        return json_response({"url": f"ws://127.0.0.1:{self.port}/gateway-ws"})

    def _gateway_bot(self, body: Any) -> web.Response:
        return json_response(
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
            return json_response(self._commands.get(int(guild or 0), []))

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
        return json_response(stored)


_APP = r"([0-9]+)"
ROUTES: tuple[Route, ...] = (
    ("GET", re.compile(r"/users/@me"), RestPart._me),
    ("GET", re.compile(r"/oauth2/applications/@me"), RestPart._application),
    ("GET", re.compile(r"/gateway"), RestPart._gateway_url),
    ("GET", re.compile(r"/gateway/bot"), RestPart._gateway_bot),
    ("GET", re.compile(rf"/applications/{_APP}/commands"), RestPart._list_commands),
    ("PUT", re.compile(rf"/applications/{_APP}/commands"), RestPart._put_commands),
    ("GET", re.compile(rf"/applications/{_APP}/guilds/([0-9]+)/commands"), RestPart._list_commands),
    ("PUT", re.compile(rf"/applications/{_APP}/guilds/([0-9]+)/commands"), RestPart._put_commands),
)


def too_many(
    bucket: Bucket,
    limit: int,
    retry_after: float,
    forced: Forced429 | None,
    *,
    is_global: bool = False,
) -> web.Response:
    is_global = is_global or (forced is not None and forced.is_global)
    response = json_response(
        {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global},
        status=429,
    )
    ratelimit_headers(response, bucket.name, limit, 0, retry_after)
    response.headers["Retry-After"] = f"{retry_after:.3f}"
    response.headers["X-RateLimit-Scope"] = "global" if is_global else "user"
    if is_global:
        response.headers["X-RateLimit-Global"] = "true"
    return response


def ratelimit_headers(
    response: web.Response, bucket: str, limit: int, remaining: int, reset_after: float
) -> None:
    response.headers["X-RateLimit-Limit"] = str(limit)
    response.headers["X-RateLimit-Remaining"] = str(remaining)
    response.headers["X-RateLimit-Reset"] = f"{time.time() + reset_after:.3f}"
    response.headers["X-RateLimit-Reset-After"] = f"{reset_after:.3f}"
    response.headers["X-RateLimit-Bucket"] = bucket
