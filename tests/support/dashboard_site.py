"""The dashboard served by hypercorn on 127.0.0.1 over a real store, logging in through
the fake Discord's OAuth endpoints, for the dashboard's tests (httpx and Chromium)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import trio
from starlette.applications import Starlette

from actors import AuditLog
from bot import CommandSet
from bot.commands import build_command_set
from bot.commands.games import games_commands
from bot.http import bound_port, open_http_listeners, serve_http
from bot.http.dashboard import Dashboard
from bot.http.dashboard_auth import ADMINISTRATOR, MANAGE_GUILD, DiscordOAuth, OAuthSettings
from limits import DashboardLimits
from metrics import Readiness, health
from tests.economy_fixtures import RunningGames, WallClock, running_games
from tests.fake_discord import GUILD_ID, FakeDiscord
from tests.fake_discord.oauth import CLIENT_ID, CLIENT_SECRET, FakeOAuth, Member

GUILD = GUILD_ID
OTHER_GUILD = 900_000_000_000_000_005
# A guild whose owner logs in but where the bot is not.
BOTLESS_GUILD = 900_000_000_000_000_006
VIP_ROLE = 700_000_000_000_000_001
# Who logs in: an admin (Manage Server), a plain member, an admin of another guild only,
# and the owner of the guild (no permission bits needed).
ADMIN, MEMBER, OTHER_ADMIN, OWNER = 42, 43, 44, 45
SESSION_SECRET = "test-session-secret-0123456789abcdef"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_REQUEST_ID = re.compile(r'name="request_id" value="([^"]+)"')


def members() -> list[Member]:
    return [
        Member(ADMIN, "Ada", {GUILD: (False, MANAGE_GUILD)}),
        Member(MEMBER, "Max", {GUILD: (False, 0)}),
        Member(OTHER_ADMIN, "Olga", {GUILD: (False, 0), OTHER_GUILD: (False, ADMINISTRATOR)}),
        Member(OWNER, "Oscar", {GUILD: (True, 0), BOTLESS_GUILD: (True, 0)}),
    ]


@dataclass
class Site:
    url: str
    fake: FakeDiscord
    oauth: FakeOAuth
    running: RunningGames
    dashboard: Dashboard
    commands: CommandSet
    clock: WallClock

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, follow_redirects=False, timeout=30)

    async def login(self, client: httpx.AsyncClient, member: int) -> None:
        """Log ``client`` in as ``member`` the way a browser does: to Discord and back."""
        self.oauth.login_as = member
        to_discord = await client.get("/dashboard/login")
        assert to_discord.status_code == 303, to_discord.text
        back = await client.get(to_discord.headers["location"])
        assert back.status_code == 302, back.text
        done = await client.get(back.headers["location"])
        assert done.status_code == 303, done.text

    async def csrf(self, client: httpx.AsyncClient) -> str:
        """The session's CSRF token, from the logout form every page carries."""
        page = await client.get("/dashboard/")
        found = _CSRF.search(page.text)
        assert found is not None
        return found[1]

    async def form_tokens(self, client: httpx.AsyncClient, path: str) -> dict[str, str]:
        """The hidden fields a page's form carries (CSRF token and request id)."""
        page = await client.get(path)
        assert page.status_code == 200, (path, page.status_code)
        csrf = _CSRF.search(page.text)
        request_id = _REQUEST_ID.search(page.text)
        assert csrf is not None and request_id is not None, path
        return {"csrf_token": csrf[1], "request_id": request_id[1]}


@asynccontextmanager
async def open_site(
    tmp_path: Path, limits: DashboardLimits | None = None, *, public_url: str | None = None
) -> AsyncIterator[Site]:
    """The site on a free port; ``public_url`` is the URL it says it is reached at (by
    default the port's own, so a login can complete)."""
    clock = WallClock()
    oauth = FakeOAuth(
        members(),
        bot_guilds={GUILD: "Fake Casino", OTHER_GUILD: "Other Casino"},
        roles={GUILD: [(VIP_ROLE, "VIP")]},
    )
    limits = limits or DashboardLimits()
    with FakeDiscord(oauth=oauth) as fake, trio.fail_after(120):
        async with (
            running_games(tmp_path / "data", clock=clock) as running,
            httpx.AsyncClient() as http,
            trio.open_nursery() as nursery,
        ):
            listeners = await open_http_listeners("127.0.0.1", 0)
            url = f"http://127.0.0.1:{bound_port(listeners)}"
            settings = OAuthSettings(
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
                public_url=public_url or url,
                session_secret=SESSION_SECRET,
                authorize_url=oauth.authorize_url,
                api_url=fake.api_url,
                bot_token="fake-token",
            )
            readiness = Readiness(running.metrics, health.server_conditions(discord=False))
            for condition in health.server_conditions(discord=False):
                readiness.set(condition, True, "ok")
            dashboard = Dashboard(
                oauth=DiscordOAuth(settings, http, limits),
                economy=running.economy,
                games=running.games,
                timers=running.timers,
                audit=AuditLog(running.store, running.economy.context.now),
                readiness=readiness,
                backups_path=tmp_path / "backups",
                wall_clock=clock,
                timers_overdue_grace_seconds=300.0,
                limits=limits,
            )
            await nursery.start(serve_http, Starlette(routes=[dashboard.mount()]), listeners)
            game_commands, game_buttons = games_commands(running.games, running.economy)
            commands = build_command_set(
                economy=running.economy,
                metrics=running.metrics,
                rate_limit=None,
                extra_commands=game_commands,
                extra_buttons=game_buttons,
            )
            yield Site(url, fake, oauth, running, dashboard, commands, clock)
            nursery.cancel_scope.cancel()
