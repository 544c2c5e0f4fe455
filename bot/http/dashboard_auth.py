"""Who is using the dashboard, and what they may manage: Discord login and sessions.

Login is Discord's OAuth2 authorization-code flow with the scopes ``identify guilds``:
the dashboard sends the browser to Discord's authorize page with a random ``state`` (kept
in a short-lived signed cookie), Discord sends it back with a code, and the dashboard
trades the code for the member's access token, then reads ``/users/@me``. The token is
kept on the server, never in the browser: the session cookie holds only a random session
id, signed with ``CROUPIER_SESSION_SECRET`` (itsdangerous, a well-kept signing library).
Sessions expire, are bounded in number, and logging out forgets the session here, so a
copied cookie stops working at once.

A member may manage a guild they own or where they have Manage Server or Administrator,
and only where the bot is too. Both come from Discord (``/users/@me/guilds`` with the
member's token; ``/guilds/{id}`` with the bot's, which answers only for a guild the bot
is in), cached for a short time for pages and asked again for every write, so a member
whose role was taken away cannot go on changing things on the strength of their login.
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from itsdangerous import BadSignature, TimestampSigner

from actors.errors import InvalidInput
from bot.config import Config, check_dashboard
from bot.inputs import snowflake
from limits import DashboardLimits

ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
OAUTH_SCOPES = "identify guilds"
SESSION_COOKIE = "croupier_session"
STATE_COOKIE = "croupier_oauth_state"


@dataclass(frozen=True)
class OAuthSettings:
    """The application's OAuth2 credentials and where Discord and the dashboard are."""

    client_id: int
    client_secret: str
    # The dashboard's public base URL; Discord redirects to ``<url>/dashboard/callback``.
    public_url: str
    session_secret: str
    authorize_url: str
    api_url: str
    bot_token: str

    @classmethod
    def from_config(cls, config: Config) -> OAuthSettings:
        """The dashboard's settings from a configuration that turned it on."""
        assert config.dashboard_enabled
        check_dashboard(config)
        return cls(
            client_id=config.discord_client_id,
            client_secret=config.discord_client_secret,
            public_url=config.dashboard_url,
            session_secret=config.session_secret,
            authorize_url=config.discord_oauth_url,
            api_url=config.discord_api_url,
            bot_token=config.discord_token,
        )

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_url.rstrip('/')}/dashboard/callback"

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")


class DiscordUnavailable(Exception):
    """Discord did not answer as expected; the page says to try again."""


class LoginRefused(Exception):
    """The login could not be completed (bad state, refused code); the message says why."""


@dataclass(frozen=True)
class DiscordUser:
    id: int
    name: str


@dataclass(frozen=True)
class GuildAccess:
    """One guild as the member's guild list shows it."""

    id: int
    name: str
    owner: bool
    permissions: int

    @property
    def can_manage(self) -> bool:
        return self.owner or bool(self.permissions & (ADMINISTRATOR | MANAGE_GUILD))


@dataclass(frozen=True)
class Role:
    id: int
    name: str
    position: int


class DiscordOAuth:
    """The few Discord calls the dashboard makes, over one HTTP client."""

    def __init__(
        self, settings: OAuthSettings, client: httpx.AsyncClient, limits: DashboardLimits
    ) -> None:
        self.settings = settings
        self._client = client
        self._limits = limits
        self._api = settings.api_url.rstrip("/")

    def authorize_url(self, state: str) -> str:
        query = urlencode(
            {
                "response_type": "code",
                "client_id": str(self.settings.client_id),
                "scope": OAUTH_SCOPES,
                "state": state,
                "redirect_uri": self.settings.redirect_uri,
            }
        )
        return f"{self.settings.authorize_url}?{query}"

    async def exchange(self, code: str) -> str:
        """The access token for an authorization code; ``LoginRefused`` if Discord says no."""
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.settings.redirect_uri,
        }
        auth = (str(self.settings.client_id), self.settings.client_secret)
        response = await self._call("POST", "/oauth2/token", data=data, auth=auth)
        if response.status_code in (400, 401):
            raise LoginRefused("Discord refused the login; start again")
        body = _json_object(response)
        token = body.get("access_token")
        if not isinstance(token, str) or not token or body.get("token_type") != "Bearer":
            raise DiscordUnavailable("Discord's token answer had no bearer token")
        scopes = set(str(body.get("scope", "")).split())
        if not set(OAUTH_SCOPES.split()) <= scopes:
            raise LoginRefused("the login did not grant the identify and guilds scopes")
        return token

    async def user(self, token: str) -> DiscordUser:
        body = _json_object(await self._bearer("GET", "/users/@me", token))
        name = body.get("global_name") or body.get("username")
        return DiscordUser(_id(body.get("id")), str(name or "member"))

    async def guilds(self, token: str) -> tuple[GuildAccess, ...]:
        """The member's guilds with their permissions there."""
        return self._guild_list(await self._bearer("GET", "/users/@me/guilds", token))

    async def bot_in(self, guild_id: int) -> bool:
        """Whether the bot is in the guild: Discord shows a guild only to its members."""
        headers = {"Authorization": f"Bot {self.settings.bot_token}"}
        response = await self._call("GET", f"/guilds/{guild_id}", headers=headers)
        if response.status_code in (403, 404):
            return False
        return _id(_json_object(response).get("id")) == guild_id

    async def roles(self, guild_id: int) -> tuple[Role, ...]:
        """The guild's roles, highest first, without @everyone (which cannot be granted)."""
        headers = {"Authorization": f"Bot {self.settings.bot_token}"}
        response = await self._call("GET", f"/guilds/{guild_id}/roles", headers=headers)
        body = _json(response)
        if not isinstance(body, list):
            raise DiscordUnavailable("Discord's role list was not a list")
        roles = []
        for raw in body[: self._limits.roles_listed_max]:
            if not isinstance(raw, Mapping):
                raise DiscordUnavailable("Discord's role list held something else")
            role_id = _id(raw.get("id"))
            position = raw.get("position", 0)
            if not isinstance(position, int) or isinstance(position, bool):
                raise DiscordUnavailable("Discord's role list had an unreadable position")
            # @everyone (whose id is the guild's) and roles an integration manages cannot
            # be granted by the bot.
            if role_id != guild_id and raw.get("managed") is not True:
                roles.append(Role(role_id, str(raw.get("name", "")), position))
        return tuple(sorted(roles, key=lambda role: -role.position))

    def _guild_list(self, response: httpx.Response) -> tuple[GuildAccess, ...]:
        body = _json(response)
        if not isinstance(body, list):
            raise DiscordUnavailable("Discord's guild list was not a list")
        guilds = []
        for raw in body[: self._limits.guilds_listed_max]:
            if not isinstance(raw, Mapping):
                raise DiscordUnavailable("Discord's guild list held something else")
            permissions = raw.get("permissions", "0")
            if not (isinstance(permissions, str | int) and str(permissions).isdigit()):
                raise DiscordUnavailable("Discord's guild list had unreadable permissions")
            guilds.append(
                GuildAccess(
                    _id(raw.get("id")),
                    str(raw.get("name", "")),
                    raw.get("owner") is True,
                    int(permissions),
                )
            )
        return tuple(guilds)

    async def _bearer(self, method: str, path: str, token: str) -> httpx.Response:
        response = await self._call(method, path, headers={"Authorization": f"Bearer {token}"})
        if response.status_code == 401:
            raise LoginRefused("Discord no longer accepts this login; log in again")
        return response

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._client.request(
                method, self._api + path, timeout=self._limits.discord_timeout_seconds, **kwargs
            )
        except httpx.HTTPError as exc:
            raise DiscordUnavailable(f"Discord could not be reached: {type(exc).__name__}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise DiscordUnavailable(f"Discord answered {response.status_code}")
        return response


def _json(response: httpx.Response) -> Any:
    if response.status_code != 200:
        raise DiscordUnavailable(f"Discord answered {response.status_code}")
    try:
        return response.json()
    except ValueError as exc:
        raise DiscordUnavailable("Discord's answer was not JSON") from exc


def _json_object(response: httpx.Response) -> Mapping[str, Any]:
    body = _json(response)
    if not isinstance(body, Mapping):
        raise DiscordUnavailable("Discord's answer was not an object")
    return body


def _id(value: object) -> int:
    try:
        return snowflake(value, "id")
    except InvalidInput as exc:
        raise DiscordUnavailable("Discord sent an id that is not one") from exc


# --- sessions ----------------------------------------------------------------------------


@dataclass
class Session:
    """One logged-in member. ``csrf`` goes into every form the session is shown."""

    sid: str
    user: DiscordUser
    access_token: str
    csrf: str
    expires_at: float
    guilds: tuple[GuildAccess, ...] = ()
    # When ``guilds`` was fetched, on the monotonic clock; None: never.
    guilds_at: float | None = None

    def check_csrf(self, token: object) -> bool:
        return isinstance(token, str) and hmac.compare_digest(token, self.csrf)


class SessionStore:
    """Sessions by id, at most ``sessions_max`` (the oldest go first), each expiring
    ``session_seconds`` after login on ``clock`` (wall-clock seconds)."""

    def __init__(self, limits: DashboardLimits, clock: Callable[[], float]) -> None:
        self._limits = limits
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, user: DiscordUser, access_token: str) -> Session:
        session = Session(
            sid=secrets.token_urlsafe(32),
            user=user,
            access_token=access_token,
            csrf=secrets.token_urlsafe(32),
            expires_at=self._clock() + self._limits.session_seconds,
        )
        self._sessions[session.sid] = session
        while len(self._sessions) > self._limits.sessions_max:
            self._sessions.popitem(last=False)
        return session

    def get(self, sid: str) -> Session | None:
        session = self._sessions.get(sid)
        if session is not None and session.expires_at <= self._clock():
            del self._sessions[sid]
            return None
        return session

    def close(self, sid: str) -> None:
        self._sessions.pop(sid, None)


class CookieSigner:
    """Signs the session id and the login state for cookies, with a timestamp so an old
    cookie is refused even if its browser kept it past its expiry."""

    def __init__(self, secret: str) -> None:
        self._session = TimestampSigner(secret, salt="croupier.dashboard.session")
        self._state = TimestampSigner(secret, salt="croupier.dashboard.state")

    def session(self, sid: str) -> str:
        return self._session.sign(sid).decode()

    def session_id(self, cookie: str | None, max_age_seconds: int) -> str | None:
        return _unsign(self._session, cookie, max_age_seconds)

    def state(self, state: str) -> str:
        return self._state.sign(state).decode()

    def state_value(self, cookie: str | None, max_age_seconds: int) -> str | None:
        return _unsign(self._state, cookie, max_age_seconds)


def _unsign(signer: TimestampSigner, cookie: str | None, max_age_seconds: int) -> str | None:
    if not cookie:
        return None
    try:
        return signer.unsign(cookie, max_age=max_age_seconds).decode()
    except BadSignature:
        return None
