"""A real headless Chromium (Debian's, driven by Playwright) uses the dashboard as a
server owner would: logs in through the fake Discord's OAuth pages, changes a setting
from the keyboard, creates a shop item that /shop then lists through the command layer,
and has a forged form from another page refused. Screenshots of every page are kept
under test-artifacts/dashboard/."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.support.dashboard_site import ADMIN, GUILD, MEMBER, VIP_ROLE, open_site
from tests.support.invoke import ok, run

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "dashboard"
# A page on another port of the same host: same-site, so the browser sends the session
# cookie with its form, and only the CSRF token can tell the forgery apart.
FORGED_URL = "http://127.0.0.1:9/forged"


def _require_browser() -> None:
    missing = []
    if shutil.which("chromium") is None and not Path(CHROMIUM).exists():
        missing.append("chromium (scripts/install-chromium.sh installs it)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[test]')")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"missing under CI: {', '.join(missing)}")
        pytest.skip(f"missing: {', '.join(missing)}")


def browse(url: str, guild: int, on_shop: Callable[[], list[str]]) -> dict[str, Any]:
    """The whole browser session, run in a worker thread on an asyncio loop of its own:
    what it saw, for the test to check. The loop is made here rather than by the asyncio
    policy, which trio-asyncio replaces once the Discord tests have run."""
    loop = asyncio.SelectorEventLoop()
    try:
        return loop.run_until_complete(_browse(url, guild, on_shop))
    finally:
        loop.close()


async def _browse(url: str, guild: int, on_shop: Callable[[], list[str]]) -> dict[str, Any]:
    from playwright.async_api import Route, async_playwright, expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    seen: dict[str, Any] = {}
    base = f"{url}/dashboard/guilds/{guild}"
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            page.set_default_timeout(20_000)

            async def shot(name: str) -> None:
                await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

            await page.goto(f"{url}/dashboard/")
            await shot("01-login")
            await page.get_by_role("link", name="Log in with Discord").click()
            await expect(page.get_by_role("heading", name="Your servers")).to_be_visible()
            await shot("02-guilds")
            await page.get_by_role("link", name="Fake Casino").click()
            await expect(page.get_by_role("heading", name="Economy settings")).to_be_visible()
            await shot("03-settings")
            # The first Tab reaches the skip link, which takes the focus past the menus.
            await page.keyboard.press("Tab")
            await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()

            # From the keyboard: the label finds the field, Enter submits the form.
            name = page.get_by_label("Currency name")
            await name.fill("chips")
            await name.press("Enter")
            await expect(page.get_by_role("status")).to_have_text("Settings saved.")
            seen["currency"] = await page.get_by_label("Currency name").input_value()
            await shot("04-settings-saved")

            sections = page.get_by_role("navigation", name="Server sections")
            await sections.get_by_role("link", name="Shop").click()
            await page.get_by_label("Name", exact=True).fill("Golden ticket")
            await page.get_by_label("Price", exact=True).fill("250")
            await page.get_by_label("Stock", exact=True).fill("5")
            await page.get_by_label("Role granted on use").select_option(label="VIP")
            await page.get_by_label("Description").fill("Opens the VIP lounge")
            await page.get_by_role("button", name="Create item").click()
            await expect(page.get_by_role("status")).to_have_text("Item created.")
            seen["shop_row"] = await page.get_by_role("row", name="Golden ticket").inner_text()
            seen["shop_command"] = on_shop()
            await shot("05-shop")
            await page.get_by_role("link", name="Golden ticket").click()
            heading = page.get_by_role("heading", name="Item #1: Golden ticket")
            await expect(heading).to_be_visible()
            await shot("06-item")

            for index, section in enumerate(("members", "audit", "games", "health"), start=7):
                await page.goto(f"{base}/{section}")
                await shot(f"{index:02d}-{section}")
            await page.goto(f"{base}/audit")
            seen["audit"] = await page.content()
            await page.goto(f"{base}/members/{MEMBER}")
            await shot("11-member")

            # A page elsewhere posts a form to the dashboard without the token.
            forged = (
                f'<form method="post" action="{base}/settings">'
                '<input name="currency_name" value="stolen">'
                '<button type="submit">Win a prize</button></form>'
            )

            async def serve_forged(route: Route) -> None:
                await route.fulfill(body=forged, content_type="text/html")

            await page.route(FORGED_URL, serve_forged)
            await page.goto(FORGED_URL)
            async with page.expect_navigation() as navigation:
                await page.get_by_role("button", name="Win a prize").click()
            response = await navigation.value
            seen["forged_status"] = response.status if response else None
            await shot("12-forged-refused")

            await page.goto(f"{base}/settings")
            seen["currency_after_forgery"] = await page.get_by_label("Currency name").input_value()
            await page.get_by_role("button", name="Log out").click()
            await expect(page.get_by_role("link", name="Log in with Discord")).to_be_visible()
            await page.goto(f"{base}/settings")
            seen["after_logout"] = page.url
        finally:
            await browser.close()
    return seen


async def test_a_browser_logs_in_changes_a_setting_and_stocks_the_shop(tmp_path: Path) -> None:
    """Through Chromium: the OAuth login, a setting saved from the keyboard, an item
    created with a role that /shop lists through the command layer, a forged form
    refused with 403, and after logging out the pages ask to log in again."""
    _require_browser()
    async with open_site(tmp_path) as site:
        site.oauth.login_as = ADMIN

        def shop_through_commands() -> list[str]:
            reply = trio.from_thread.run(
                partial(run, site.commands, "shop", by=MEMBER, guild=GUILD)
            )
            return [item["name"] for item in ok(reply)["items"]]

        seen = await trio.to_thread.run_sync(browse, site.url, GUILD, shop_through_commands)
        assert site.running.economy.settings(GUILD).currency_name == "chips"
        [item] = site.running.economy.items(GUILD)
    assert seen["currency"] == "chips"
    assert seen["shop_command"] == ["Golden ticket"]
    assert (item.name, item.price, item.stock, item.role_id) == ("Golden ticket", 250, 5, VIP_ROLE)
    assert "Golden ticket" in seen["shop_row"] and "250 chips" in seen["shop_row"]
    assert "item.create" in seen["audit"] and "settings.update" in seen["audit"]
    assert seen["forged_status"] == 403
    assert seen["currency_after_forgery"] == "chips"
    assert seen["after_logout"].endswith("/dashboard/")
    shots = sorted(p.name for p in ARTIFACTS.glob("*.png"))
    assert len(shots) == 12, shots
