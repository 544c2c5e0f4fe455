"""The dashboard's request plumbing: who may see a guild's pages, forms, rendering, errors.

Every page of the dashboard (``dashboard_forms``, ``dashboard_views``) is a method over
``DashboardBase``: it takes a ``Guard`` (the session, and a guild the member may
manage, asked of Discord again for every write), reads forms of bounded size with their
CSRF token, renders a template and records writes in the audit log, all here, once.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import trio
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actors import AuditLog, Economy, TimerService
from actors.errors import DuplicateItem, InvalidInput
from actors.games import Games
from bot.http.dashboard_auth import (
    SESSION_COOKIE,
    CookieSigner,
    DiscordOAuth,
    GuildAccess,
    LoginRefused,
    Session,
    SessionStore,
)
from bot.inputs import (
    snowflake,
)
from limits import DashboardLimits
from metrics import Readiness

log = logging.getLogger("croupier.dashboard")

DASHBOARD_PATH = "/dashboard"
HERE = Path(__file__).parent
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


class NeedLogin(Exception):
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
class Guard:
    """A request allowed on a guild: its session and the guild as Discord lists it."""

    session: Session
    guild: GuildAccess


class DashboardBase:
    """The dashboard's state, and what every page does with a request."""

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
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
        )
        self._templates.filters["when"] = _when

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

    async def _guard(self, request: Request, form: Mapping[str, str] | None = None) -> Guard:
        """The session and guild of a guild page. A write (``form`` given) must carry the
        CSRF token, and asks Discord again whether the member may still manage it."""
        write = form is not None
        if write:
            assert form is not None
            session = self._checked_session(request, form)
        else:
            found = self._session(request)
            if found is None:
                raise NeedLogin()
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
        return Guard(session, guild)

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
        guard: Guard,
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

    def _back(self, guard: Guard, page: str, notice: str) -> Response:
        """Post/redirect/get: a reload of the page after a write does not send it again."""
        return RedirectResponse(f"{guild_path(guard)}/{page}?notice={notice}", status_code=303)

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


def form_request_id(form: Mapping[str, str]) -> str:
    request_id = form.get("request_id", "")
    if not _REQUEST_ID.fullmatch(request_id):
        raise Refused(400, "This form is missing its request id; reload the page.")
    return request_id


def page_number(request: Request, pages_max: int) -> int:
    text = request.query_params.get("page", "1")
    if not (text.isascii() and text.isdigit() and len(text) <= 7) or not int(text) >= 1:
        raise Refused(400, "That is not a page number.")
    return min(int(text), pages_max)


def guild_path(guard: Guard) -> str:
    return f"{DASHBOARD_PATH}/guilds/{guard.guild.id}"


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")
