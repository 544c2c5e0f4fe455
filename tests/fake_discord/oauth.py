"""Discord's OAuth2 endpoints for the fake Discord: the authorize page, the token
exchange, the member's guild list, and the guilds and roles the bot sees, with
configurable members, guilds and permissions.

``FakeOAuth`` is handed to ``FakeDiscord(oauth=...)``, which mounts its routes ahead of
its own. The authorize page logs in whichever member ``login_as`` names (there is no
form to fill): it redirects straight back to the ``redirect_uri`` with a one-use code
and the ``state`` it was given, as Discord does for an application already authorized.
Tests change permissions while a member is logged in (``grant``) to prove the dashboard
asks again, and every call is counted per route.
"""

from __future__ import annotations

import base64
import secrets
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

CLIENT_ID = 900_000_000_000_000_010
CLIENT_SECRET = "fake-client-secret"
_SCOPES = {"identify", "guilds"}


@dataclass
class Member:
    """A Discord user who can log in, and their guilds: guild id -> (owner, permissions)."""

    id: int
    name: str
    guilds: dict[int, tuple[bool, int]] = field(default_factory=dict)


class FakeOAuth:
    """Members who can log in, the guilds the bot is in, and each guild's roles."""

    def __init__(
        self,
        members: Iterable[Member],
        *,
        bot_guilds: Mapping[int, str],
        roles: Mapping[int, Iterable[tuple[int, str]]] | None = None,
        client_id: int = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self._lock = threading.Lock()
        self._members = {member.id: member for member in members}
        self._bot_guilds = dict(bot_guilds)
        self._roles = {guild: list(found) for guild, found in (roles or {}).items()}
        self._codes: dict[str, tuple[int, str]] = {}
        self._tokens: dict[str, int] = {}
        self._calls: Counter[str] = Counter()
        self.login_as: int | None = None
        self.port = 0

    # What tests set and read (from the test's thread).

    def grant(self, member: int, guild: int, *, owner: bool = False, permissions: int) -> None:
        """Set ``member``'s standing in ``guild`` (permissions 0 and not owner: a plain
        member); the next guild list Discord gives shows it."""
        with self._lock:
            self._members[member].guilds[guild] = (owner, permissions)

    def leave(self, member: int, guild: int) -> None:
        with self._lock:
            self._members[member].guilds.pop(guild, None)

    def bot_leaves(self, guild: int) -> None:
        """The bot is removed from ``guild``."""
        with self._lock:
            self._bot_guilds.pop(guild, None)

    def revoke_tokens(self, member: int) -> None:
        """Forget every access token of ``member``, as Discord does when they
        deauthorize the application."""
        with self._lock:
            for token in [t for t, who in self._tokens.items() if who == member]:
                del self._tokens[token]

    def calls(self, route: str) -> int:
        with self._lock:
            return self._calls[route]

    @property
    def authorize_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/oauth2/authorize"

    # Mounting (called by FakeDiscord on its own loop's thread).

    def mount(self, router: web.UrlDispatcher, port: int, fallback: Any) -> None:
        """Add the routes ahead of the fake's catch-all ones; ``fallback`` answers what
        is not OAuth's (the bot's own ``/users/@me``)."""
        self.port = port
        self._fallback = fallback
        router.add_get("/oauth2/authorize", self._authorize)
        router.add_post("/api/v10/oauth2/token", self._token)
        router.add_get("/api/v10/{tail:users/@me}", self._me)
        router.add_get("/api/v10/users/@me/guilds", self._guilds)
        router.add_get("/api/v10/guilds/{guild:[0-9]+}", self._bot_guild)
        router.add_get("/api/v10/guilds/{guild:[0-9]+}/roles", self._guild_roles)

    # Routes.

    async def _authorize(self, request: web.Request) -> web.Response:
        query = request.query
        self._count("authorize")
        scopes = set(query.get("scope", "").split())
        if (
            query.get("client_id") != str(self.client_id)
            or query.get("response_type") != "code"
            or not scopes >= _SCOPES
            or not query.get("redirect_uri")
        ):
            return web.json_response({"error": "invalid_request"}, status=400)
        with self._lock:
            member = self.login_as
            if member is None or member not in self._members:
                return web.json_response({"error": "access_denied"}, status=400)
            code = secrets.token_urlsafe(16)
            self._codes[code] = (member, query["redirect_uri"])
        back = {"code": code}
        if "state" in query:
            back["state"] = query["state"]
        raise web.HTTPFound(f"{query['redirect_uri']}?{urlencode(back)}")

    async def _token(self, request: web.Request) -> web.Response:
        self._count("token")
        form = await request.post()
        if not self._client_ok(request.headers.get("Authorization", "")):
            return web.json_response({"error": "invalid_client"}, status=401)
        code = str(form.get("code", ""))
        with self._lock:
            issued = self._codes.pop(code, None)
            if form.get("grant_type") != "authorization_code" or issued is None:
                return web.json_response({"error": "invalid_grant"}, status=400)
            member, redirect_uri = issued
            if form.get("redirect_uri") != redirect_uri:
                return web.json_response({"error": "invalid_grant"}, status=400)
            token = secrets.token_urlsafe(24)
            self._tokens[token] = member
        return web.json_response(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": 604_800,
                "refresh_token": secrets.token_urlsafe(24),
                "scope": "identify guilds",
            }
        )

    async def _me(self, request: web.Request) -> web.StreamResponse:
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            response: web.StreamResponse = await self._fallback(request)
            return response
        self._count("me")
        member = self._bearer(request)
        if member is None:
            return _unauthorized()
        return web.json_response(
            {"id": str(member.id), "username": member.name, "global_name": member.name}
        )

    async def _guilds(self, request: web.Request) -> web.Response:
        self._count("guilds")
        member = self._bearer(request)
        if member is None:
            return _unauthorized()
        with self._lock:
            listed = [
                _guild(g, self._bot_guilds.get(g, f"Guild {g}"), owner, permissions)
                for g, (owner, permissions) in member.guilds.items()
            ]
        return web.json_response(listed)

    async def _bot_guild(self, request: web.Request) -> web.Response:
        """A guild as the bot sees it; Discord refuses one the bot is not in."""
        self._count("bot_guild")
        guild = int(request.match_info["guild"])
        if not request.headers.get("Authorization", "").startswith("Bot "):
            return _unauthorized()
        with self._lock:
            name = self._bot_guilds.get(guild)
        if name is None:
            return web.json_response({"message": "Missing Access", "code": 50001}, status=403)
        return web.json_response({"id": str(guild), "name": name, "owner_id": "1"})

    async def _guild_roles(self, request: web.Request) -> web.Response:
        self._count("roles")
        guild = int(request.match_info["guild"])
        if not request.headers.get("Authorization", "").startswith("Bot "):
            return _unauthorized()
        with self._lock:
            if guild not in self._bot_guilds:
                return web.json_response({"message": "Missing Access", "code": 50001}, status=403)
            listed = [
                {"id": str(guild), "name": "@everyone", "position": 0, "managed": False},
                *(
                    {"id": str(role), "name": name, "position": index + 1, "managed": False}
                    for index, (role, name) in enumerate(self._roles.get(guild, []))
                ),
            ]
        return web.json_response(listed)

    # Helpers.

    def _count(self, route: str) -> None:
        with self._lock:
            self._calls[route] += 1

    def _client_ok(self, authorization: str) -> bool:
        expected = f"{self.client_id}:{self.client_secret}".encode()
        return authorization == "Basic " + base64.b64encode(expected).decode()

    def _bearer(self, request: web.Request) -> Member | None:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        with self._lock:
            member = self._tokens.get(token)
            return None if member is None else self._members[member]


def _guild(guild_id: int, name: str, owner: bool, permissions: int) -> dict[str, Any]:
    return {
        "id": str(guild_id),
        "name": name,
        "icon": None,
        "owner": owner,
        "permissions": str(permissions),
        "features": [],
    }


def _unauthorized() -> web.Response:
    return web.json_response({"message": "401: Unauthorized", "code": 0}, status=401)
