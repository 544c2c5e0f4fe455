"""The web dashboard: server-rendered pages for the people who run a guild's economy.

Mounted at ``/dashboard`` on the public HTTP app. Every page is HTML from a Jinja2
template (autoescaped: a member's text is never markup) and every form is a plain HTML
form that works without JavaScript; the pages carry no script at all, which is what lets
the Content-Security-Policy forbid every script. Jinja2 is the template engine Starlette
itself documents, well kept by the Pallets project, with autoescaping on by default for
HTML.

Routes (``{guild}`` is a guild the member may manage, see ``bot.http.dashboard_auth``)::

    GET  /                          log-in page, or the guild picker
    GET  /login, /callback          Discord OAuth2 login (state checked), POST /logout
    GET|POST /guilds/{guild}/settings                  what /economy-config sets
    GET|POST /guilds/{guild}/shop                      items; create one
    GET|POST /guilds/{guild}/shop/{item}               edit one
    POST /guilds/{guild}/shop/{item}/retire            stop selling it
    GET  /guilds/{guild}/members[/{user}]              leaderboard, a member's history
    GET  /guilds/{guild}/audit                         who changed what, by any door
    GET  /guilds/{guild}/games                         games in play
    GET  /guilds/{guild}/health                        integrity, backups, parked work

Writes go through the same domain calls as the admin commands (``Economy.update_settings``,
``create_item``, ``edit_item``, ``retire_item``), so they are validated by the same code,
and each appends an entry to the audit log. Every POST needs the session's CSRF token
(403 without it), the member's right to manage the guild is fetched from Discord again
for every write, and each form carries a one-use request id that is the idempotency key
of what it changes: a form sent twice changes nothing twice.

This module holds the app (its routes, the log-in, the error pages); the pages are in
``dashboard_forms`` (settings, shop) and ``dashboard_views`` (members, audit, games,
health), over the request plumbing of ``dashboard_base``.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from actors import AuditLog, Economy, TimerService
from actors.games import Games
from bot.config import Config
from bot.http.dashboard_auth import (
    SESSION_COOKIE,
    STATE_COOKIE,
    DiscordOAuth,
    DiscordUnavailable,
    LoginRefused,
    OAuthSettings,
)
from bot.http.dashboard_base import DASHBOARD_PATH, HERE, NeedLogin, Refused, SecurityHeaders, log
from bot.http.dashboard_forms import FormPages
from bot.http.dashboard_views import ViewPages
from limits import DashboardLimits
from metrics import Readiness


class Dashboard(FormPages, ViewPages):
    """The dashboard; ``mount()`` is what the public app includes."""

    # --- the app -----------------------------------------------------------------------

    def mount(self) -> Mount:
        return Mount(DASHBOARD_PATH, app=self.app())

    def app(self) -> ASGIApp:
        guild = "/guilds/{guild}"
        routes = [
            Route("/", self._index, methods=["GET"]),
            Route("/login", self._login, methods=["GET"]),
            Route("/callback", self._callback, methods=["GET"]),
            Route("/logout", self._logout, methods=["POST"]),
            Route(f"{guild}/settings", self._settings, methods=["GET", "POST"]),
            Route(f"{guild}/shop", self._shop, methods=["GET", "POST"]),
            Route(f"{guild}/shop/{{item}}", self._item, methods=["GET", "POST"]),
            Route(f"{guild}/shop/{{item}}/retire", self._retire, methods=["POST"]),
            Route(f"{guild}/members", self._members, methods=["GET"]),
            Route(f"{guild}/members/{{user}}", self._member, methods=["GET"]),
            Route(f"{guild}/audit", self._audit_page, methods=["GET"]),
            Route(f"{guild}/games", self._games, methods=["GET"]),
            Route(f"{guild}/health", self._health, methods=["GET"]),
            Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
        ]
        app = Starlette(
            routes=routes,
            exception_handlers={
                Refused: self._on_refused,
                NeedLogin: self._on_need_login,
                DiscordUnavailable: self._on_discord_unavailable,
                LoginRefused: self._on_login_refused,
            },
        )
        return SecurityHeaders(app)

    # --- login ---------------------------------------------------------------------------

    async def _index(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return self._render(request, "login.html", None)
        guilds = await self._guilds(session, fresh=False)
        candidates = [g for g in guilds if g.can_manage][: self.limits.picker_guilds_max]
        manageable = [g for g in candidates if await self._bot_in(g.id, fresh=False)]
        return self._render(request, "guilds.html", session, guilds=manageable)

    async def _login(self, request: Request) -> Response:
        state = secrets.token_urlsafe(32)
        response = RedirectResponse(self.oauth.authorize_url(state), status_code=303)
        self._set_cookie(
            response, STATE_COOKIE, self._signer.state(state), self.limits.login_seconds
        )
        return response

    async def _callback(self, request: Request) -> Response:
        state = request.query_params.get("state", "")
        expected = self._signer.state_value(
            request.cookies.get(STATE_COOKIE), self.limits.login_seconds
        )
        if not expected or not secrets.compare_digest(state, expected):
            raise Refused(403, "This login link is not the one this browser started; log in again.")
        code = request.query_params.get("code", "")
        if not code or len(code) > 512:
            raise Refused(403, "Discord did not complete the login; log in again.")
        token = await self.oauth.exchange(code)
        user = await self.oauth.user(token)
        session = self.sessions.open(user, token)
        log.info("dashboard login: user %d", user.id)
        response = RedirectResponse(f"{DASHBOARD_PATH}/", status_code=303)
        self._set_cookie(
            response,
            SESSION_COOKIE,
            self._signer.session(session.sid),
            self.limits.session_seconds,
        )
        response.delete_cookie(STATE_COOKIE, path=DASHBOARD_PATH)
        return response

    async def _logout(self, request: Request) -> Response:
        form = await self._form(request)
        session = self._checked_session(request, form)
        self.sessions.close(session.sid)
        response = RedirectResponse(f"{DASHBOARD_PATH}/", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=DASHBOARD_PATH)
        return response

    # --- errors --------------------------------------------------------------------------

    async def _on_refused(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        return self._render(
            request, "error.html", self._session(request), message=exc.message, status=exc.status
        )

    async def _on_need_login(self, request: Request, exc: Exception) -> Response:
        return RedirectResponse(f"{DASHBOARD_PATH}/", status_code=303)

    async def _on_discord_unavailable(self, request: Request, exc: Exception) -> Response:
        log.warning("dashboard: %s", exc)
        message = "Discord could not be asked just now; try again in a moment."
        return self._render(
            request, "error.html", self._session(request), message=message, status=502
        )

    async def _on_login_refused(self, request: Request, exc: Exception) -> Response:
        return self._render(request, "error.html", None, message=str(exc), status=401)


@asynccontextmanager
async def open_dashboard(
    config: Config,
    *,
    economy: Economy,
    games: Games,
    timers: TimerService,
    readiness: Readiness,
    timers_overdue_grace_seconds: float,
    limits: DashboardLimits | None = None,
) -> AsyncIterator[Dashboard]:
    """The dashboard a configuration describes, with the HTTP client it asks Discord
    through (closed when the block ends); mount ``dashboard.mount()`` in the public app."""
    limits = limits or DashboardLimits()
    settings = OAuthSettings.from_config(config)
    async with httpx.AsyncClient() as client:
        yield Dashboard(
            oauth=DiscordOAuth(settings, client, limits),
            economy=economy,
            games=games,
            timers=timers,
            audit=AuditLog(economy.store, economy.context.now),
            readiness=readiness,
            backups_path=config.backups_path,
            wall_clock=economy.context.now,
            timers_overdue_grace_seconds=timers_overdue_grace_seconds,
            limits=limits,
        )
