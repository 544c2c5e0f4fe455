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
"""

from __future__ import annotations

import logging
import re
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import trio
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actors.accounts import member_of
from actors.audit import AuditLog
from actors.economy import Economy
from actors.errors import CroupierError, DuplicateItem, InvalidInput, NotFound
from actors.games import Games
from actors.parked import list_parked
from actors.records import ScopeSettings, ShopItem
from actors.timers import TimerService
from bot.commands.render import money, signed_money
from bot.commands.shop import item_result
from bot.config import Config
from bot.dispatch import REFUSALS, user_error
from bot.http.dashboard_auth import (
    SESSION_COOKIE,
    STATE_COOKIE,
    CookieSigner,
    DashboardLimits,
    DiscordOAuth,
    DiscordUnavailable,
    GuildAccess,
    LoginRefused,
    OAuthSettings,
    Role,
    Session,
    SessionStore,
)
from bot.inputs import (
    INTEGER_OPTION_MAX,
    OversizedNumber,
    clean_text,
    number_from_text,
    snowflake,
)
from metrics import Readiness
from metrics.health import INTEGRITY
from storage.backup import newest_verified

log = logging.getLogger("croupier.dashboard")

DASHBOARD_PATH = "/dashboard"
_HERE = Path(__file__).parent
# No script may run, no plugin load, no other site frame the pages; styles come from the
# dashboard's own stylesheet, avatars are not shown, and forms post only back here.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)
_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_setting_value_chars_max = 100
audit_page_entries = 50
# Fixed notices shown after a write succeeded (the query names one; nothing is echoed).
_NOTICES = {
    "settings": "Settings saved.",
    "created": "Item created.",
    "edited": "Item saved.",
    "retired": "Item retired; members who own it keep theirs.",
    "unchanged": "Nothing was changed.",
}


class Refused(Exception):
    """A request the dashboard will not serve: the status and a line for the page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _NeedLogin(Exception):
    """A page was asked for without a session: go to the log-in page."""


class SecurityHeaders:
    """ASGI middleware that adds the security headers to every response it passes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


@dataclass(frozen=True)
class _Guard:
    """A request allowed on a guild: its session and the guild as Discord lists it."""

    session: Session
    guild: GuildAccess


class Dashboard:
    """The dashboard's state; ``mount()`` is what the public app includes."""

    def __init__(
        self,
        *,
        oauth: DiscordOAuth,
        economy: Economy,
        games: Games,
        timers: TimerService,
        audit: AuditLog,
        readiness: Readiness,
        backups_path: Path,
        wall_clock: Callable[[], float],
        timers_overdue_grace_seconds: float,
        limits: DashboardLimits | None = None,
    ) -> None:
        self.limits = limits or DashboardLimits()
        self.oauth = oauth
        self.economy = economy
        self.games = games
        self.timers = timers
        self.audit = audit
        self.readiness = readiness
        self.backups_path = backups_path
        self.sessions = SessionStore(self.limits, wall_clock)
        self._signer = CookieSigner(oauth.settings.session_secret)
        self._overdue_grace = timers_overdue_grace_seconds
        # Guild id -> (whether the bot is in it, when that was asked on trio's clock).
        self._bot_presence: OrderedDict[int, tuple[bool, float]] = OrderedDict()
        self._templates = Environment(
            loader=FileSystemLoader(_HERE / "templates"),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
        )
        self._templates.filters["when"] = _when

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
            Mount("/static", app=StaticFiles(directory=_HERE / "static"), name="static"),
        ]
        app = Starlette(
            routes=routes,
            exception_handlers={
                Refused: self._on_refused,
                _NeedLogin: self._on_need_login,
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

    # --- settings ------------------------------------------------------------------------

    async def _settings(self, request: Request) -> Response:
        if request.method == "GET":
            guard = await self._guard(request)
            current = self.economy.settings(guard.guild.id)
            return self._settings_page(request, guard, current.public(), None, 200)
        form = await self._form(request)
        guard = await self._guard(request, form)
        current = self.economy.settings(guard.guild.id)
        try:
            changes = parse_settings_form(current, form)
            if changes:
                request_id = _request_id(form)
                updated = await self.economy.update_settings(guard.guild.id, changes)
                await self._record(
                    guard,
                    request_id,
                    "settings.update",
                    "settings",
                    {name: getattr(current, name) for name in changes},
                    {name: getattr(updated, name) for name in changes},
                )
        except InvalidInput as error:
            shown = {**current.public(), **{k: v for k, v in form.items() if k in current.public()}}
            return self._settings_page(request, guard, shown, error, 400)
        notice = "settings" if changes else "unchanged"
        return self._back(guard, "settings", notice)

    def _settings_page(
        self,
        request: Request,
        guard: _Guard,
        values: Mapping[str, Any],
        error: InvalidInput | None,
        status: int,
    ) -> Response:
        fields = [
            {"name": name, "label": _label(name), "number": kind == "int", "value": values[name]}
            for name, kind in ScopeSettings.editable().items()
        ]
        return self._render(
            request,
            "settings.html",
            guard.session,
            guard=guard,
            section="settings",
            fields=fields,
            error=error,
            status=status,
        )

    # --- the shop ------------------------------------------------------------------------

    async def _shop(self, request: Request) -> Response:
        if request.method == "GET":
            guard = await self._guard(request)
            roles = await self.oauth.roles(guard.guild.id)
            return self._shop_page(request, guard, roles, None, {}, 200)
        form = await self._form(request)
        guard = await self._guard(request, form)
        roles = await self.oauth.roles(guard.guild.id)
        try:
            request_id = _request_id(form)
            fields = self._item_fields(form, roles, current=None)
            item = await self.economy.create_item(
                guard.guild.id, **fields, key=f"dashboard:{request_id}"
            )
            await self._record(
                guard, request_id, "item.create", f"item:{item.item_id}", {}, item_result(item)
            )
        except REFUSALS as refusal:
            return self._shop_page(request, guard, roles, user_error(refusal), form, 400)
        return self._back(guard, "shop", "created")

    def _shop_page(
        self,
        request: Request,
        guard: _Guard,
        roles: tuple[Role, ...],
        error: CroupierError | None,
        values: Mapping[str, str],
        status: int,
    ) -> Response:
        guild_id = guard.guild.id
        settings = self.economy.settings(guild_id)
        items = self.economy.items(guild_id, include_retired=True)
        return self._render(
            request,
            "shop.html",
            guard.session,
            guard=guard,
            section="shop",
            items=items,
            roles=roles,
            role_names={role.id: role.name for role in roles},
            price=lambda amount: money(settings, amount),
            error=error,
            values=values,
            status=status,
        )

    async def _item(self, request: Request) -> Response:
        if request.method == "GET":
            guard = await self._guard(request)
            item = self._find_item(guard, request)
            roles = await self.oauth.roles(guard.guild.id)
            return self._item_page(request, guard, item, roles, None, _item_form(item), 200)
        form = await self._form(request)
        guard = await self._guard(request, form)
        item = self._find_item(guard, request)
        roles = await self.oauth.roles(guard.guild.id)
        try:
            request_id = _request_id(form)
            fields = self._item_fields(form, roles, current=item)
            changes = {k: v for k, v in fields.items() if getattr(item, k) != v}
            if not changes:
                return self._back(guard, f"shop/{item.item_id}", "unchanged")
            updated = await self.economy.edit_item(guard.guild.id, item.item_id, **changes)
            await self._record(
                guard,
                request_id,
                "item.edit",
                f"item:{item.item_id}",
                item_result(item),
                item_result(updated),
            )
        except REFUSALS as refusal:
            return self._item_page(request, guard, item, roles, user_error(refusal), form, 400)
        return self._back(guard, f"shop/{item.item_id}", "edited")

    def _item_page(
        self,
        request: Request,
        guard: _Guard,
        item: ShopItem,
        roles: tuple[Role, ...],
        error: CroupierError | None,
        values: Mapping[str, str],
        status: int,
    ) -> Response:
        return self._render(
            request,
            "item.html",
            guard.session,
            guard=guard,
            section="shop",
            item=item,
            roles=roles,
            error=error,
            values=values,
            status=status,
        )

    async def _retire(self, request: Request) -> Response:
        form = await self._form(request)
        guard = await self._guard(request, form)
        item = self._find_item(guard, request)
        request_id = _request_id(form)
        if item.retired:
            return self._back(guard, "shop", "unchanged")
        retired = await self.economy.retire_item(guard.guild.id, item.item_id)
        await self._record(
            guard,
            request_id,
            "item.retire",
            f"item:{item.item_id}",
            item_result(item),
            item_result(retired),
        )
        return self._back(guard, "shop", "retired")

    def _find_item(self, guard: _Guard, request: Request) -> ShopItem:
        text = request.path_params["item"]
        try:
            if not (text.isascii() and text.isdigit() and len(text) <= 20):
                raise NotFound("item", text)
            return self.economy.find_item(guard.guild.id, int(text))
        except NotFound:
            raise Refused(404, "There is no such item.") from None

    def _item_fields(
        self, form: Mapping[str, str], roles: tuple[Role, ...], *, current: ShopItem | None
    ) -> dict[str, Any]:
        """The item a form describes, parsed at the boundary; the economy checks the rest."""
        limits = self.economy.limits
        role_id: int | None = None
        if form.get("role", ""):
            role_id = snowflake(form["role"], "role")
            known = {role.id for role in roles} | {current.role_id if current else None}
            if role_id not in known:
                raise InvalidInput("role", "is not a role of this server; pick one from the list")
        return {
            "name": clean_text(
                form.get("name", ""), "name", chars_max=limits.item_name_chars_max
            ).strip(),
            "price": parse_whole(form.get("price", ""), "price", required=True),
            "stock": parse_whole(form.get("stock", ""), "stock", required=False),
            "sell_price": parse_whole(form.get("sell_price", ""), "sell_price", required=False),
            "role_id": role_id,
            "description": clean_text(
                form.get("description", ""), "description", chars_max=limits.reason_chars_max
            ).strip(),
        }

    # --- members -------------------------------------------------------------------------

    async def _members(self, request: Request) -> Response:
        guard = await self._guard(request)
        looked_up = request.query_params.get("user")
        error = None
        if looked_up is not None:
            try:
                user = snowflake(looked_up.strip(), "user")
            except InvalidInput as exc:
                error = exc
            else:
                return RedirectResponse(f"{_guild_path(guard)}/members/{user}", status_code=303)
        page = _page_number(request, self.economy.limits.leaderboard_pages_max)
        board = self.economy.leaderboard(guard.guild.id, page)
        settings = self.economy.settings(guard.guild.id)
        return self._render(
            request,
            "members.html",
            guard.session,
            guard=guard,
            section="members",
            board=board,
            price=lambda amount: money(settings, amount),
            error=error,
            status=400 if error else 200,
        )

    async def _member(self, request: Request) -> Response:
        guard = await self._guard(request)
        try:
            user = snowflake(request.path_params["user"], "user")
        except InvalidInput:
            raise Refused(404, "That is not a Discord user id.") from None
        guild_id = guard.guild.id
        settings = self.economy.settings(guild_id)
        wallet = self.economy.find_wallet(guild_id, user)
        history = self.economy.history(guild_id, user, _page_number(request, 10**6))
        return self._render(
            request,
            "member.html",
            guard.session,
            guard=guard,
            section="members",
            user=user,
            wallet=wallet,
            history=history,
            inventory=self.economy.inventory(guild_id, user) if wallet else [],
            price=lambda amount: money(settings, amount),
            signed=lambda amount: signed_money(settings, amount),
            member_of=member_of,
        )

    # --- audit, games, health -------------------------------------------------------------

    async def _audit_page(self, request: Request) -> Response:
        guard = await self._guard(request)
        before = request.query_params.get("before") or None
        try:
            page = self.audit.page(guard.guild.id, before=before, limit=audit_page_entries)
        except InvalidInput:
            raise Refused(400, "That page link is not one this dashboard made.") from None
        return self._render(
            request, "audit.html", guard.session, guard=guard, section="audit", page=page
        )

    async def _games(self, request: Request) -> Response:
        guard = await self._guard(request)
        settings = self.economy.settings(guard.guild.id)
        return self._render(
            request,
            "games.html",
            guard.session,
            guard=guard,
            section="games",
            games=self.games.live(guard.guild.id),
            price=lambda amount: money(settings, amount),
        )

    async def _health(self, request: Request) -> Response:
        guard = await self._guard(request)
        scope = self.economy.scope(guard.guild.id)
        snapshot = self.readiness.snapshot()
        integrity = next((c for c in snapshot.conditions if c.name == INTEGRITY), None)
        backup = await trio.to_thread.run_sync(newest_verified, self.backups_path)
        parked = [p for p in self.economy.parked_transfers() if p.scope == scope]
        settings = self.economy.settings(guard.guild.id)
        return self._render(
            request,
            "health.html",
            guard.session,
            guard=guard,
            section="health",
            snapshot=snapshot,
            integrity=integrity,
            backup=backup,
            parked=parked,
            retrying=len(self.economy.failing_transfers()),
            timers_overdue=self.timers.overdue(self._overdue_grace),
            # Games and timers parked on any server: they carry no per-server figures.
            parked_other={
                kind: len(list_parked(self.economy.store, kind)) for kind in ("game", "timer")
            },
            price=lambda amount: money(settings, amount),
        )

    # --- who may do what ------------------------------------------------------------------

    def _session(self, request: Request) -> Session | None:
        sid = self._signer.session_id(
            request.cookies.get(SESSION_COOKIE), self.limits.session_seconds
        )
        return None if sid is None else self.sessions.get(sid)

    def _checked_session(self, request: Request, form: Mapping[str, str]) -> Session:
        """The session of a state-changing request whose form carries its CSRF token."""
        session = self._session(request)
        if session is None or not session.check_csrf(form.get("csrf_token")):
            raise Refused(403, "This form has expired or did not come from this dashboard.")
        return session

    async def _guard(self, request: Request, form: Mapping[str, str] | None = None) -> _Guard:
        """The session and guild of a guild page. A write (``form`` given) must carry the
        CSRF token, and asks Discord again whether the member may still manage it."""
        write = form is not None
        if write:
            assert form is not None
            session = self._checked_session(request, form)
        else:
            found = self._session(request)
            if found is None:
                raise _NeedLogin()
            session = found
        try:
            guild_id = snowflake(request.path_params["guild"], "guild")
        except InvalidInput:
            raise Refused(404, "That is not a Discord server id.") from None
        guilds = await self._guilds(session, fresh=write)
        guild = next((g for g in guilds if g.id == guild_id), None)
        if guild is None or not guild.can_manage:
            raise Refused(403, "You need Manage Server or Administrator on that server.")
        if not await self._bot_in(guild_id, fresh=write):
            raise Refused(403, "Croupier is not on that server; invite it first.")
        return _Guard(session, guild)

    async def _guilds(self, session: Session, *, fresh: bool) -> tuple[GuildAccess, ...]:
        now = trio.current_time()
        fetched_at = session.guilds_at
        stale = fetched_at is None or now - fetched_at > self.limits.guilds_cache_seconds
        if fresh or stale:
            try:
                session.guilds = await self.oauth.guilds(session.access_token)
            except LoginRefused:
                self.sessions.close(session.sid)
                raise
            session.guilds_at = now
        return session.guilds

    async def _bot_in(self, guild_id: int, *, fresh: bool) -> bool:
        """Whether the bot is in the guild, asked of Discord per guild (a bot's own guild
        list stops at 200) and remembered for a short time, for at most
        ``bot_presence_kept_max`` guilds."""
        now = trio.current_time()
        known = self._bot_presence.get(guild_id)
        if fresh or known is None or now - known[1] > self.limits.guilds_cache_seconds:
            known = (await self.oauth.bot_in(guild_id), now)
            self._bot_presence[guild_id] = known
            self._bot_presence.move_to_end(guild_id)
            while len(self._bot_presence) > self.limits.bot_presence_kept_max:
                self._bot_presence.popitem(last=False)
        return known[0]

    async def _record(
        self,
        guard: _Guard,
        request_id: str,
        action: str,
        target: str,
        before: Mapping[str, Any],
        after: Mapping[str, Any],
    ) -> None:
        await self.audit.append(
            guard.guild.id,
            request=f"dashboard:{request_id}",
            actor=f"user:{guard.session.user.id}",
            via="dashboard",
            action=action,
            target=target,
            before=before,
            after=after,
        )

    # --- plumbing ---------------------------------------------------------------------------

    async def _form(self, request: Request) -> dict[str, str]:
        """A urlencoded form of at most ``form_bytes_max`` bytes, one value per name."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type != "application/x-www-form-urlencoded":
            # Only the dashboard's own forms change anything, and they are urlencoded
            # with the CSRF token inside: any other body cannot carry the token.
            raise Refused(403, "This form did not come from this dashboard.")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.limits.form_bytes_max:
                raise Refused(413, "That form is too large.")
        try:
            pairs = parse_qsl(
                body.decode(),
                keep_blank_values=True,
                strict_parsing=False,
                max_num_fields=self.limits.form_fields_max,
            )
        except (UnicodeDecodeError, ValueError):
            raise Refused(400, "That form could not be read.") from None
        form: dict[str, str] = {}
        for name, value in pairs:
            if name in form:
                raise Refused(400, f"The form sent {name!r} twice.")
            form[name] = value
        return form

    def _render(
        self,
        request: Request,
        template: str,
        session: Session | None,
        *,
        status: int = 200,
        **context: Any,
    ) -> Response:
        notice = _NOTICES.get(request.query_params.get("notice", ""))
        error = context.setdefault("error", None)
        # Which input the error is about, to mark it invalid (a duplicate name is not an
        # InvalidInput, yet it is the name's fault).
        field = getattr(error, "field", "name" if isinstance(error, DuplicateItem) else "")
        html = self._templates.get_template(template).render(
            base=DASHBOARD_PATH,
            session=session,
            csrf=session.csrf if session else "",
            notice=notice,
            guard=context.pop("guard", None),
            section=context.pop("section", ""),
            error_field=field,
            # Each form rendered gets its own request id: the key that makes a form sent
            # twice change things once.
            request_id=secrets.token_urlsafe(16),
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def _back(self, guard: _Guard, page: str, notice: str) -> Response:
        """Post/redirect/get: a reload of the page after a write does not send it again."""
        return RedirectResponse(f"{_guild_path(guard)}/{page}?notice={notice}", status_code=303)

    def _set_cookie(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=DASHBOARD_PATH,
            secure=self.oauth.settings.secure_cookies,
            httponly=True,
            samesite="lax",
        )

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


# --- parsing forms (the boundary) -----------------------------------------------------------


def parse_settings_form(current: ScopeSettings, form: Mapping[str, str]) -> dict[str, Any]:
    """The settings a form changes, typed as ``update_settings`` wants them. A setting
    the form leaves out stays as it is."""
    changes: dict[str, Any] = {}
    for name, kind in ScopeSettings.editable().items():
        if name not in form:
            continue
        text = clean_text(form[name], name, chars_max=_setting_value_chars_max).strip()
        value: int | str = text
        if kind == "int":
            figure = number_from_text(text.replace(",", "").replace("_", ""))
            if figure is None or isinstance(figure, OversizedNumber):
                raise InvalidInput(name, f"{text!r} is not a whole number")
            value = figure
        if value != getattr(current, name):
            changes[name] = value
    return changes


def parse_whole(text: str, field: str, *, required: bool) -> int | None:
    """A form's whole number of 0 or more; empty means none where that is allowed."""
    text = text.strip().replace(",", "").replace("_", "")
    if not text:
        if required:
            raise InvalidInput(field, "is required")
        return None
    figure = number_from_text(text)
    if figure is None or isinstance(figure, OversizedNumber) or figure < 0:
        raise InvalidInput(field, "must be a whole number of 0 or more")
    if figure > INTEGER_OPTION_MAX:
        raise InvalidInput(field, f"must be at most {INTEGER_OPTION_MAX}")
    return figure


def _request_id(form: Mapping[str, str]) -> str:
    request_id = form.get("request_id", "")
    if not _REQUEST_ID.fullmatch(request_id):
        raise Refused(400, "This form is missing its request id; reload the page.")
    return request_id


def _page_number(request: Request, pages_max: int) -> int:
    text = request.query_params.get("page", "1")
    if not (text.isascii() and text.isdigit() and len(text) <= 7) or not int(text) >= 1:
        raise Refused(400, "That is not a page number.")
    return min(int(text), pages_max)


def _item_form(item: ShopItem) -> dict[str, str]:
    """An item as its edit form shows it."""
    return {
        "name": item.name,
        "price": str(item.price),
        "stock": "" if item.stock is None else str(item.stock),
        "sell_price": "" if item.sell_price is None else str(item.sell_price),
        "role": "" if item.role_id is None else str(item.role_id),
        "description": item.description,
    }


def _guild_path(guard: _Guard) -> str:
    return f"{DASHBOARD_PATH}/guilds/{guard.guild.id}"


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")
