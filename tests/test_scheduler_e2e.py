"""The scheduler end to end: the real interactions.py client and the REST port against the
fake Discord, and a real server process killed between a tempban and its expiry."""

from __future__ import annotations

import collections
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import trio

from actors import run_casino
from bot import CommandSet
from bot.commands import build_command_set
from bot.commands.scheduler import scheduler_commands
from bot.discord_actions import DiscordActions
from limits import RateLimit
from metrics import new_metrics
from tests.economy_fixtures import WallClock
from tests.fake_discord import CHANNEL_ID, GUILD_ID, FakeDiscord
from tests.support.discord import serving
from tests.support.server_process import ServerProcess

BAN_MEMBERS, MANAGE_GUILD = 1 << 2, 1 << 5
MODLOG, BIRTHDAYS, ROLE = 7001, 7002, 7003
# 2027-01-15 08:00 UTC.
T0 = 1_800_000_000.0


@pytest.fixture
def fake() -> Iterator[FakeDiscord]:
    with FakeDiscord() as running:
        yield running


async def until(check: Callable[[], object], what: str, seconds: float = 20) -> None:
    with trio.move_on_after(seconds):
        while not check():
            await trio.sleep(0.05)
        return
    raise AssertionError(f"timed out waiting for {what}")


async def slash(
    fake: FakeDiscord, name: str, options: Mapping[str, Any], **kwargs: Any
) -> dict[str, Any]:
    interaction = fake.send_interaction(fake.slash_command(name, options, **kwargs))
    [callback] = await fake.wait_callbacks(interaction)
    return dict(callback.data)


def counted(fake: FakeDiscord) -> collections.Counter[tuple[str, str]]:
    """Requests to the scheduler's routes by (method, path), the API prefix dropped."""
    routes = ("/bans/", "/roles/", "/messages")
    return collections.Counter(
        (r.method, r.path[r.path.index("/", 1) :] if r.path.startswith("/api") else r.path)
        for r in fake.requests
        if any(part in r.path for part in routes) and "/webhooks/" not in r.path
    )


@asynccontextmanager
async def scheduler_on_discord(
    fake: FakeDiscord, data_dir: Path, clock: WallClock
) -> AsyncIterator[tuple[Any, CommandSet]]:
    metrics = new_metrics()
    async with (
        DiscordActions(fake.api_url, "fake-token") as port,
        run_casino(data_dir, metrics=metrics, wall_clock=clock, discord=port) as running,
    ):
        casino = running.casino
        extra, buttons = scheduler_commands(casino.scheduler)
        commands = build_command_set(
            economy=casino.economy,
            metrics=metrics,
            rate_limit=RateLimit(burst_commands=1_000),
            extra_commands=extra,
            extra_buttons=buttons,
        )
        async with serving(fake, commands, metrics, on_ban_removed=casino.scheduler.ban_lifted):
            await fake.wait_commands_synced()
            yield casino, commands


async def test_every_scheduler_request_reaches_discord_exactly_once(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    """Ban, unban, role add and removal, the announcement, the reminders (in the channel
    and by DM) and the modlog posts each reach the fake's REST routes once; a ban lifted
    by hand cancels its unban."""
    clock = WallClock(T0)
    async with scheduler_on_discord(fake, tmp_path / "data", clock) as (casino, _):
        await slash(fake, "modlog", {"channel": MODLOG}, permissions=MANAGE_GUILD)
        await slash(
            fake,
            "birthday-config",
            {"role": ROLE, "channel": BIRTHDAYS, "hour": 9},
            permissions=MANAGE_GUILD,
        )
        banned = await slash(
            fake,
            "tempban",
            {"user": 43, "duration": "1h", "reason": "spam"},
            permissions=BAN_MEMBERS,
        )
        assert banned["embeds"][0]["title"] == "Tempbanned"
        await slash(
            fake,
            "tempban",
            {"user": 44, "duration": "1h", "reason": "flood"},
            permissions=BAN_MEMBERS,
        )
        await slash(fake, "birthday-set", {"date": "01-15", "timezone": "UTC"}, user_id=45)
        await slash(fake, "remind", {"in": "30m", "text": "stand up"}, user_id=46)
        await slash(fake, "remind", {"in": "30m", "text": "drink", "where": "dm"}, user_id=47)
        await until(lambda: (GUILD_ID, 45, ROLE) in fake.role_grants, "the birthday role")
        fake.lift_ban(GUILD_ID, 44)
        await until(lambda: casino.scheduler.tempban_of(GUILD_ID, 44) is None, "the cancel")

        clock.advance(2 * 3_600)
        casino.timers.kick()
        await until(lambda: (GUILD_ID, 43) not in fake.bans, "the unban")
        await until(lambda: len(fake.posted_messages) >= 7, "the posts")
        clock.now = datetime.fromisoformat("2027-01-16T00:00:01+00:00").timestamp()
        casino.timers.kick()
        await until(lambda: fake.role_removals, "the role's removal")
        # Anything sent twice would arrive within this.
        await trio.sleep(1)

    requests = counted(fake)
    guild = f"/guilds/{GUILD_ID}"
    assert requests[("PUT", f"{guild}/bans/43")] == 1
    assert requests[("PUT", f"{guild}/bans/44")] == 1
    assert requests[("DELETE", f"{guild}/bans/43")] == 1
    assert requests[("DELETE", f"{guild}/bans/44")] == 0
    assert requests[("PUT", f"{guild}/members/45/roles/{ROLE}")] == 1
    assert requests[("DELETE", f"{guild}/members/45/roles/{ROLE}")] == 1
    assert requests[("POST", f"/channels/{BIRTHDAYS}/messages")] == 1
    assert requests[("POST", f"/channels/{CHANNEL_ID}/messages")] == 1
    modlog = [m.content for m in fake.posted_messages if m.channel_id == MODLOG]
    assert len(modlog) == 4 and requests[("POST", f"/channels/{MODLOG}/messages")] == 4
    assert any("lifted in Discord" in text for text in modlog)
    assert any("expired" in text and "<@43>" in text for text in modlog)
    [ban] = [r for r in fake.requests if r.method == "PUT" and r.path.endswith("/bans/43")]
    assert "spam" in ban.headers.get("X-Audit-Log-Reason", "")
    reminder = next(m for m in fake.posted_messages if m.channel_id == CHANNEL_ID)
    assert "stand up" in reminder.content and reminder.mention_user_ids == (46,)
    dm_channel = fake.dm_channel_of(47)
    assert dm_channel is not None
    assert requests[("POST", f"/channels/{dm_channel}/messages")] == 1
    assert all(m.nonce for m in fake.posted_messages)


@pytest.mark.slow
async def test_a_sigkill_between_a_tempban_and_its_expiry_still_unbans(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    """A server killed with SIGKILL right after a one-minute tempban, and started again
    after the minute is over, lifts the ban once at start."""
    data_dir = tmp_path / "data"
    env = {
        "CROUPIER_DISCORD_TOKEN": "fake-token",
        "CROUPIER_DISCORD_API_URL": fake.api_url,
    }
    server = ServerProcess(data_dir, env)
    server.start()
    try:
        await server.wait_ready()
        await fake.wait_commands_synced()
        answer = await slash(
            fake,
            "tempban",
            {"user": 43, "duration": "1m", "reason": "spam"},
            permissions=BAN_MEMBERS,
        )
        assert answer["embeds"][0]["title"] == "Tempbanned", answer
        banned_at = time.time()
        server.kill()
        assert (GUILD_ID, 43) in fake.bans
        await trio.sleep(max(0.0, banned_at + 61 - time.time()))
        assert (GUILD_ID, 43) in fake.bans
        server.start()
        await server.wait_ready()
        await until(lambda: (GUILD_ID, 43) not in fake.bans, "the unban after the restart", 30)
    finally:
        server.kill()
    unbans = [r for r in fake.requests if r.method == "DELETE" and r.path.endswith("/bans/43")]
    assert len(unbans) == 1, server.output()
