"""The web dashboard over HTTP against the fake Discord's OAuth endpoints: who may see
and change what, CSRF, sessions, security headers, and writes that go through the same
domain calls as the admin commands and land in the audit log."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors import ScopeSettings, ShopItem
from actors.errors import InvalidInput
from bot import UserRef
from bot.http.dashboard_auth import DiscordUser, SessionStore
from bot.http.dashboard_base import CONTENT_SECURITY_POLICY
from bot.http.dashboard_forms import parse_settings_form, parse_whole
from limits import DashboardLimits, integer_option_max
from metrics.health import INTEGRITY
from tests.economy_fixtures import WallClock
from tests.fake_discord import FakeDiscord
from tests.fake_discord.oauth import CLIENT_ID, CLIENT_SECRET, FakeOAuth
from tests.support.dashboard_site import (
    ADMIN,
    BOTLESS_GUILD,
    GUILD,
    MEMBER,
    OTHER_ADMIN,
    OTHER_GUILD,
    OWNER,
    SESSION_SECRET,
    VIP_ROLE,
    Site,
    members,
    open_site,
)
from tests.support.invoke import ok, run
from tests.support.server_process import CROUPIER, ServerProcess, free_port

G = f"/dashboard/guilds/{GUILD}"
PAGES = (
    f"{G}/settings",
    f"{G}/shop",
    f"{G}/shop/1",
    f"{G}/members",
    f"{G}/members/{MEMBER}",
    f"{G}/audit",
    f"{G}/games",
    f"{G}/health",
)


def item_form(**changes: str) -> dict[str, str]:
    return {
        "name": "Golden ticket",
        "price": "250",
        "stock": "",
        "sell_price": "",
        "role": "",
        "description": "",
        **changes,
    }


async def make_item(site: Site, name: str = "Hat") -> ShopItem:
    return await site.running.economy.create_item(GUILD, name=name, price=10)


async def post(
    site: Site, client: httpx.AsyncClient, path: str, data: dict[str, str], *, page: str
) -> httpx.Response:
    """Post ``data`` as the form on ``page`` would, with its CSRF token and request id."""
    tokens = await site.form_tokens(client, page)
    return await client.post(path, data={**tokens, **data})


async def test_every_route_serves_only_who_may_manage_the_guild(tmp_path: Path) -> None:
    """Everyone gets the front page (anonymous visitors the log-in page); on a guild's
    pages anonymous visitors are sent to log in, a plain member and an admin of another
    guild are refused every page and every write, an admin and the owner are served."""
    async with open_site(tmp_path) as site:
        await make_item(site)
        await make_item(site, "Scarf")
        expected = {None: 303, MEMBER: 403, OTHER_ADMIN: 403, ADMIN: 200, OWNER: 200}
        for who, status in expected.items():
            async with site.client() as client:
                if who is not None:
                    await site.login(client, who)
                picker = await client.get("/dashboard/")
                assert picker.status_code == 200
                assert ("Log in with Discord" in picker.text) == (who is None)
                for path in PAGES:
                    response = await client.get(path)
                    assert response.status_code == status, (who, path, response.status_code)
                    if who is None:
                        assert response.headers["location"] == "/dashboard/"
        writes: list[tuple[str, dict[str, str]]] = [
            (f"{G}/settings", {"currency_name": "chips"}),
            (f"{G}/shop", item_form()),
            (f"{G}/shop/1", item_form(name="Top hat", price="12")),
            (f"{G}/shop/2/retire", {}),
        ]
        # A refused member is never served the guild's forms, so they send the request id
        # of the admin's form with their own session's CSRF token (from the logout form
        # on every page); an anonymous visitor sends the admin's token itself.
        async with site.client() as admin:
            await site.login(admin, ADMIN)
            tokens = await site.form_tokens(admin, f"{G}/settings")
            for who in (None, MEMBER, OTHER_ADMIN):
                async with site.client() as client:
                    sent = dict(tokens)
                    if who is not None:
                        await site.login(client, who)
                        sent["csrf_token"] = await site.csrf(client)
                    for path, data in writes:
                        response = await client.post(path, data={**sent, **data})
                        assert response.status_code == 403, (who, path, response.status_code)
            assert site.running.economy.settings(GUILD).currency_name == "coins"
            for path, data in writes:
                response = await post(site, admin, path, data, page=f"{G}/settings")
                assert response.status_code == 303, (path, response.text)
        assert site.running.economy.settings(GUILD).currency_name == "chips"
        names = {i.name: i.retired for i in site.running.economy.items(GUILD, include_retired=True)}
        assert names == {"Top hat": False, "Scarf": True, "Golden ticket": False}


async def test_other_guilds_and_guilds_without_the_bot_are_refused(tmp_path: Path) -> None:
    """An admin of another guild manages that one only; an owner cannot manage a guild
    the bot is not in; the picker lists exactly the manageable guilds; ids that name no
    guild or item are not found."""
    async with open_site(tmp_path) as site:
        async with site.client() as client:
            await site.login(client, OTHER_ADMIN)
            picker = await client.get("/dashboard/")
            assert f"/guilds/{OTHER_GUILD}/settings" in picker.text
            assert f"/guilds/{GUILD}/" not in picker.text
            other = await client.get(f"/dashboard/guilds/{OTHER_GUILD}/settings")
            assert other.status_code == 200
        async with site.client() as client:
            await site.login(client, OWNER)
            picker = await client.get("/dashboard/")
            assert f"/guilds/{GUILD}/settings" in picker.text
            assert str(BOTLESS_GUILD) not in picker.text
            botless = await client.get(f"/dashboard/guilds/{BOTLESS_GUILD}/settings")
            assert botless.status_code == 403 and "not on that server" in botless.text
            bad_id = await client.get("/dashboard/guilds/0/settings")
            assert bad_id.status_code == 404
            for item in ("99", "abc", "1" * 30):
                missing = await client.get(f"{G}/shop/{item}")
                assert missing.status_code == 404 and "no such item" in missing.text


async def test_a_forged_form_without_the_csrf_token_is_refused(tmp_path: Path) -> None:
    """A logged-in admin's browser posting a form from elsewhere (no token, or another
    session's token) changes nothing: 403."""
    async with open_site(tmp_path) as site, site.client() as client, site.client() as other:
        await site.login(client, ADMIN)
        await site.login(other, ADMIN)
        tokens = await site.form_tokens(client, f"{G}/settings")
        others = await site.form_tokens(other, f"{G}/settings")
        forged = [
            {"request_id": tokens["request_id"], "currency_name": "stolen"},
            {**tokens, "csrf_token": "", "currency_name": "stolen"},
            {**tokens, "csrf_token": others["csrf_token"], "currency_name": "stolen"},
        ]
        for data in forged:
            response = await client.post(f"{G}/settings", data=data)
            assert response.status_code == 403
        logout = await client.post("/dashboard/logout", data={})
        assert logout.status_code == 403
        assert site.running.economy.settings(GUILD).currency_name == "coins"


async def test_a_session_expires_and_logging_out_ends_it(tmp_path: Path) -> None:
    """Past its lifetime a session is gone (pages send to log in, writes are refused);
    logging out forgets the session, so its cookie no longer works."""
    async with open_site(tmp_path) as site:
        async with site.client() as client:
            await site.login(client, ADMIN)
            tokens = await site.form_tokens(client, f"{G}/settings")
            site.clock.advance(site.dashboard.limits.session_seconds + 1)
            expired = await client.get(f"{G}/settings")
            assert expired.status_code == 303 and expired.headers["location"] == "/dashboard/"
            write = await client.post(f"{G}/settings", data={**tokens, "currency_name": "late"})
            assert write.status_code == 403
        async with site.client() as client:
            await site.login(client, ADMIN)
            cookie = client.cookies.get("croupier_session", path="/dashboard")
            assert cookie is not None
            tokens = await site.form_tokens(client, f"{G}/settings")
            out = await client.post("/dashboard/logout", data={"csrf_token": tokens["csrf_token"]})
            assert out.status_code == 303
        async with site.client() as replay:
            replay.cookies.set("croupier_session", cookie, path="/dashboard")
            again = await replay.get(f"{G}/settings")
            assert again.status_code == 303
        assert site.running.economy.settings(GUILD).currency_name == "coins"


async def test_cookies_are_signed_httponly_lax_and_expire(tmp_path: Path) -> None:
    """The login state and session cookies are HttpOnly, SameSite=Lax and expire; a
    tampered session cookie is no session; a callback with another state is refused."""
    async with open_site(tmp_path) as site, site.client() as client:
        start = await client.get("/dashboard/login")
        state_cookie = start.headers["set-cookie"].lower()
        assert "httponly" in state_cookie and "samesite=lax" in state_cookie
        assert "max-age=600" in state_cookie and "path=/dashboard" in state_cookie
        assert "secure" not in state_cookie  # the test URL is http
        site.oauth.login_as = ADMIN
        back = await client.get(start.headers["location"])
        wrong = back.headers["location"].replace("state=", "state=x")
        refused = await client.get(wrong)
        assert refused.status_code == 403
        done = await client.get(back.headers["location"])
        session_cookie = done.headers.get_list("set-cookie")[0].lower()
        assert session_cookie.startswith("croupier_session=")
        assert "httponly" in session_cookie and "samesite=lax" in session_cookie
        assert f"max-age={site.dashboard.limits.session_seconds}" in session_cookie
        signed = client.cookies.get("croupier_session", path="/dashboard")
        assert signed is not None
        client.cookies.set("croupier_session", signed[:-2] + "xx", path="/dashboard")
        tampered = await client.get(f"{G}/settings")
        assert tampered.status_code == 303


async def test_cookies_are_secure_behind_an_https_url(tmp_path: Path) -> None:
    """A dashboard reached at an https URL sets its cookies Secure, and sends Discord
    the https callback."""
    async with (
        open_site(tmp_path, public_url="https://casino.example") as site,
        site.client() as client,
    ):
        start = await client.get("/dashboard/login")
        assert "; secure" in start.headers["set-cookie"].lower()
        assert (
            "redirect_uri=https%3A%2F%2Fcasino.example%2Fdashboard%2Fcallback"
            in (start.headers["location"])
        )


async def test_every_response_carries_the_security_headers(tmp_path: Path) -> None:
    """Pages, redirects, errors and the stylesheet all carry a CSP without script,
    frame-ancestors 'none', nosniff and a referrer policy; no page holds a script."""
    async with open_site(tmp_path) as site, site.client() as client:
        anonymous = [await client.get("/dashboard/"), await client.get(f"{G}/settings")]
        await site.login(client, ADMIN)
        seen = [
            *anonymous,
            *[await client.get(path) for path in PAGES],
            await client.get("/dashboard/static/dashboard.css"),
            await client.get("/dashboard/guilds/1/settings"),
        ]
        for response in seen:
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "same-origin"
            assert "<script" not in response.text
        assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
        assert "script-src" not in CONTENT_SECURITY_POLICY
        assert "default-src 'none'" in CONTENT_SECURITY_POLICY


async def test_a_write_asks_discord_again_whether_the_member_may_manage(tmp_path: Path) -> None:
    """An admin whose Manage Server is taken away after logging in can no longer change
    anything, even while their pages are still served from the short cache; nor can
    anyone once the bot has left the guild."""
    async with open_site(tmp_path) as site, site.client() as client:
        await site.login(client, ADMIN)
        tokens = await site.form_tokens(client, f"{G}/settings")
        site.oauth.grant(ADMIN, GUILD, permissions=0)
        cached = await client.get(f"{G}/settings")
        assert cached.status_code == 200
        write = await client.post(f"{G}/settings", data={**tokens, "currency_name": "gone"})
        assert write.status_code == 403
        assert site.running.economy.settings(GUILD).currency_name == "coins"
        site.oauth.grant(ADMIN, GUILD, permissions=1 << 3)
        calls = site.oauth.calls("guilds")
        write = await client.post(f"{G}/settings", data={**tokens, "currency_name": "chips"})
        assert write.status_code == 303
        assert site.oauth.calls("guilds") == calls + 1
        assert site.running.economy.settings(GUILD).currency_name == "chips"
        site.oauth.bot_leaves(GUILD)
        write = await client.post(f"{G}/settings", data={**tokens, "currency_name": "after"})
        assert write.status_code == 403 and "not on that server" in write.text
        assert site.running.economy.settings(GUILD).currency_name == "chips"


async def test_a_login_discord_no_longer_accepts_ends_the_session(tmp_path: Path) -> None:
    """When Discord stops accepting a member's token (they deauthorized the app), the
    next check says to log in again and the session is gone."""
    async with open_site(tmp_path) as site, site.client() as client:
        await site.login(client, ADMIN)
        tokens = await site.form_tokens(client, f"{G}/settings")
        site.oauth.revoke_tokens(ADMIN)
        write = await client.post(f"{G}/settings", data={**tokens, "currency_name": "chips"})
        assert write.status_code == 401 and "log in again" in write.text
        page = await client.get(f"{G}/settings")
        assert page.status_code == 303 and page.headers["location"] == "/dashboard/"
        assert site.running.economy.settings(GUILD).currency_name == "coins"


async def test_settings_are_validated_by_the_economy_and_audited(tmp_path: Path) -> None:
    """A bad value is refused whole with the economy's own message and nothing changes;
    a good change is saved, seen by /economy-config, and recorded in the audit log."""
    async with open_site(tmp_path) as site, site.client() as client:
        await site.login(client, ADMIN)
        bad = await post(
            site,
            client,
            f"{G}/settings",
            {"work_min": "500", "work_max": "100", "currency_name": "chips"},
            page=f"{G}/settings",
        )
        assert bad.status_code == 400
        assert "work_max: needs 0 &lt;= work_min &lt;= work_max" in bad.text
        assert 'aria-invalid="true"' in bad.text
        not_number = await post(
            site, client, f"{G}/settings", {"daily_amount": "lots"}, page=f"{G}/settings"
        )
        assert not_number.status_code == 400 and "is not a whole number" in not_number.text
        assert site.running.economy.settings(GUILD).currency_name == "coins"
        good = await post(
            site,
            client,
            f"{G}/settings",
            {"daily_amount": "1,000", "currency_name": "chips"},
            page=f"{G}/settings",
        )
        assert good.status_code == 303 and good.headers["location"].endswith("notice=settings")
        shown = ok(await run(site.commands, "economy-config", by=ADMIN, admin=True, guild=GUILD))
        assert shown["settings"]["daily_amount"] == 1000
        assert shown["settings"]["currency_name"] == "chips"
        [entry] = site.dashboard.audit.page(GUILD).entries
        assert (entry.actor, entry.via, entry.action) == (
            f"user:{ADMIN}",
            "dashboard",
            "settings.update",
        )
        assert entry.before == {"daily_amount": 250, "currency_name": "coins"}
        assert entry.after == {"daily_amount": 1000, "currency_name": "chips"}
        audit = await client.get(f"{G}/audit")
        assert "settings.update" in audit.text and "currency_name: chips" in audit.text


async def test_shop_items_are_created_edited_and_retired_once_each(tmp_path: Path) -> None:
    """The shop editor creates an item with a role from the guild's roles and a stock
    (a form sent twice creates it once), edits and retires it, and /shop shows it."""
    async with open_site(tmp_path) as site, site.client() as client:
        await site.login(client, ADMIN)
        shop = await client.get(f"{G}/shop")
        assert f'<option value="{VIP_ROLE}">VIP</option>' in shop.text
        tokens = await site.form_tokens(client, f"{G}/shop")
        form = {**tokens, **item_form(role=str(VIP_ROLE), stock="5", description="Shiny")}
        first = await client.post(f"{G}/shop", data=form)
        again = await client.post(f"{G}/shop", data=form)
        assert first.status_code == again.status_code == 303
        [item] = site.running.economy.items(GUILD)
        assert (item.name, item.price, item.stock, item.role_id) == (
            "Golden ticket",
            250,
            5,
            VIP_ROLE,
        )
        listed = ok(await run(site.commands, "shop", by=MEMBER, guild=GUILD))
        assert [i["name"] for i in listed["items"]] == ["Golden ticket"]
        not_a_role = await post(
            site, client, f"{G}/shop", item_form(name="Cape", role="12345"), page=f"{G}/shop"
        )
        assert not_a_role.status_code == 400 and "is not a role of this server" in not_a_role.text
        duplicate = await post(site, client, f"{G}/shop", item_form(), page=f"{G}/shop")
        assert duplicate.status_code == 400 and "already for sale" in duplicate.text
        path = f"{G}/shop/{item.item_id}"
        edited = await post(
            site, client, path, item_form(price="300", stock="", role=str(VIP_ROLE)), page=path
        )
        assert edited.status_code == 303
        retired = await post(site, client, f"{path}/retire", {}, page=path)
        assert retired.status_code == 303
        [after] = site.running.economy.items(GUILD, include_retired=True)
        assert (after.price, after.stock, after.retired) == (300, None, True)
        assert ok(await run(site.commands, "shop", by=MEMBER, guild=GUILD))["items"] == []
        actions = [e.action for e in site.dashboard.audit.page(GUILD).entries]
        assert actions == ["item.retire", "item.edit", "item.create"]


async def test_members_history_games_and_health_show_the_store(tmp_path: Path) -> None:
    """The leaderboard and a member's balance and history come from the economy, a
    game in play is listed, and health shows the integrity result (passed, running or
    failed) and parked work."""
    async with open_site(tmp_path) as site, site.client() as client:
        await site.login(client, ADMIN)
        ok(await run(site.commands, "daily", by=MEMBER, guild=GUILD))
        ok(await run(site.commands, "pay", by=MEMBER, guild=GUILD, user=UserRef(ADMIN), amount=5))
        # A natural blackjack settles at once; deal until a hand waits for a move.
        for _ in range(20):
            ok(await run(site.commands, "blackjack", by=MEMBER, guild=GUILD, stake=10))
            if site.running.games.live(GUILD):
                break
            site.clock.advance(60)
        [live] = site.running.games.live(GUILD)
        board = await client.get(f"{G}/members")
        assert f"/members/{MEMBER}" in board.text
        lookup = await client.get(f"{G}/members", params={"user": str(MEMBER)})
        assert lookup.status_code == 303 and lookup.headers["location"].endswith(str(MEMBER))
        bad = await client.get(f"{G}/members", params={"user": "nobody"})
        assert bad.status_code == 400 and "is not a Discord id" in bad.text
        member = await client.get(f"{G}/members/{MEMBER}")
        balance = site.running.economy.find_wallet(GUILD, MEMBER)
        assert balance is not None
        assert f"{balance.balance:,} coins" in member.text and "daily" in member.text
        assert f'/members/{ADMIN}">member {ADMIN}</a>' in member.text
        stranger = await client.get(f"{G}/members/77")
        assert "has not used the economy" in stranger.text
        assert site.running.economy.find_wallet(GUILD, 77) is None
        games = await client.get(f"{G}/games")
        assert live.game_id in games.text and f"/members/{MEMBER}" in games.text
        health = await client.get(f"{G}/health")
        assert "passed (ok)" in health.text and "none yet" in health.text
        assert "0 games, 0 timers" in health.text
        site.dashboard.readiness.pending(INTEGRITY, "the first full scan is running")
        health = await client.get(f"{G}/health")
        assert "running (the first full scan is running)" in health.text
        assert "FAILED" not in health.text
        site.dashboard.readiness.set(INTEGRITY, False, "sum_zero=1")
        health = await client.get(f"{G}/health")
        assert "FAILED (sum_zero=1)" in health.text


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"content-type": "application/json"}, b"{}", 403),
        ({"content-type": "application/x-www-form-urlencoded"}, b"a=" + b"x" * 20_000, 413),
        ({"content-type": "application/x-www-form-urlencoded"}, b"a=1&a=2", 400),
    ],
)
async def test_forms_are_bounded_and_parsed_strictly(
    tmp_path: Path, headers: dict[str, str], body: bytes, status: int
) -> None:
    """A body that is not a urlencoded form (so it cannot carry the CSRF token), one past
    the size bound, or one naming a field twice is refused before anything reads it."""
    async with open_site(tmp_path) as site, site.client() as client:
        await site.login(client, ADMIN)
        response = await client.post(f"{G}/settings", content=body, headers=headers)
        assert response.status_code == status


def _server_env(fake: FakeDiscord, oauth: FakeOAuth, http_port: int) -> dict[str, str]:
    return {
        "CROUPIER_DISCORD_TOKEN": "fake-token",
        "CROUPIER_DISCORD_API_URL": fake.api_url,
        "CROUPIER_DISCORD_CLIENT_ID": str(CLIENT_ID),
        "CROUPIER_DISCORD_CLIENT_SECRET": CLIENT_SECRET,
        "CROUPIER_DASHBOARD_URL": f"http://127.0.0.1:{http_port}",
        "CROUPIER_SESSION_SECRET": SESSION_SECRET,
        "CROUPIER_DISCORD_OAUTH_URL": oauth.authorize_url,
        "CROUPIER_HTTP_ADDR": f"127.0.0.1:{http_port}",
    }


async def test_the_server_serves_the_dashboard_on_its_http_address(tmp_path: Path) -> None:
    """`croupier run` with the dashboard configured serves it on CROUPIER_HTTP_ADDR: an
    admin logs in through the fake Discord and reads the guild's settings."""
    oauth = FakeOAuth(members(), bot_guilds={GUILD: "Fake Casino"})
    with FakeDiscord(oauth=oauth) as fake:
        http_port = free_port()
        server = ServerProcess(tmp_path / "data", _server_env(fake, oauth, http_port))
        server.start()
        try:
            await server.wait_ready()
            site = f"http://127.0.0.1:{http_port}"
            async with httpx.AsyncClient(base_url=site, follow_redirects=True) as client:
                oauth.login_as = ADMIN
                picker = await client.get("/dashboard/login")
                assert picker.status_code == 200 and "Fake Casino" in picker.text
                settings = await client.get(f"{G}/settings")
                assert settings.status_code == 200 and 'value="coins"' in settings.text
        finally:
            server.kill()


def test_a_dashboard_without_its_session_secret_stops_start_up(tmp_path: Path) -> None:
    """The dashboard's keys are checked together at start: one line names the missing
    one, and the server exits 2 as for any configuration error."""
    oauth = FakeOAuth(members(), bot_guilds={GUILD: "Fake Casino"})
    with FakeDiscord(oauth=oauth) as fake:
        env = _server_env(fake, oauth, free_port())
        del env["CROUPIER_SESSION_SECRET"]
        server = ServerProcess(tmp_path / "data", env)
        done = subprocess.run(
            [CROUPIER, "run"], env=server.env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("croupier:")]
    assert len(errors) == 1 and "CROUPIER_SESSION_SECRET" in errors[0], done.stderr[-2000:]


def test_sessions_are_bounded_and_the_oldest_go_first() -> None:
    """Past ``sessions_max`` the oldest session is forgotten; the newest stay."""
    clock = WallClock()
    store = SessionStore(DashboardLimits(sessions_max=3), clock)
    opened = [store.open(DiscordUser(user, f"user{user}"), f"token{user}") for user in range(5)]
    assert len(store) == 3
    assert [store.get(s.sid) is not None for s in opened] == [False, False, True, True, True]
    clock.advance(DashboardLimits().session_seconds)
    assert store.get(opened[-1].sid) is None and len(store) == 2


@given(st.integers(min_value=0, max_value=10**15), st.booleans())
def test_a_typed_whole_number_reads_back_with_or_without_separators(
    number: int, separated: bool
) -> None:
    """A setting's figure typed with or without thousands separators is the number."""
    text = f"{number:,}" if separated else str(number)
    assert (
        parse_settings_form(ScopeSettings(), {"daily_amount": text}).get("daily_amount", 250)
        == number
    )
    assert parse_whole(text, "price", required=True) == number


@given(st.text(max_size=40))
def test_any_text_is_a_number_or_refused_by_name(text: str) -> None:
    """Whatever is typed into a number field, it parses or is refused as InvalidInput
    naming that field; nothing else escapes the boundary."""
    try:
        value = parse_whole(text, "stock", required=False)
    except InvalidInput as error:
        assert error.field == "stock"
    else:
        assert value is None or 0 <= value <= integer_option_max
