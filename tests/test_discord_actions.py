"""The REST Discord port against the fake Discord on 127.0.0.1: each action reaches its
route once with what Discord needs, each of Discord's answers maps to its result, and
the timer service retries and backs off through it."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import unquote

import pytest
import trio

from actors import TimerRecord, TimerService
from actors.discord_port import (
    CANNOT_DM_USER,
    MISSING_PERMISSIONS,
    UNKNOWN_BAN,
    UNKNOWN_CHANNEL,
    UNKNOWN_MEMBER,
    Done,
    Forbidden,
    Gone,
    Retry,
)
from actors.timer_records import delete_timer, put_timer, settled
from bot.discord_actions import DiscordActions
from limits import Limits
from storage import Store
from tests.fake_discord import CHANNEL_ID, GUILD_ID, FakeDiscord

USER, ROLE = 700_000_000_000_000_001, 700_000_000_000_000_002


@pytest.fixture
def fake() -> Iterator[FakeDiscord]:
    with FakeDiscord() as running:
        yield running


@pytest.fixture
async def port(fake: FakeDiscord) -> AsyncIterator[DiscordActions]:
    async with DiscordActions(fake.api_url, "fake-token") as actions:
        yield actions


def sent(fake: FakeDiscord, method: str, path: str) -> list[int]:
    """The statuses of the requests the fake got for (method, path), in order."""
    return [r.status for r in fake.requests if r.method == method and r.path == path]


async def test_ban_and_unban_reach_discord_once_with_their_reason(
    fake: FakeDiscord, port: DiscordActions
) -> None:
    """A ban carries delete_message_seconds and the URL-encoded audit reason; lifting it
    works once, and a second lift is Unknown Ban, a permanent answer."""
    reason = "spam — 2 h tempban"
    assert await port.ban(GUILD_ID, USER, reason=reason, delete_message_seconds=3600) == Done()
    assert fake.bans == {(GUILD_ID, USER): 3600}
    [ban] = [r for r in fake.requests if r.method == "PUT"]
    assert ban.body == {"delete_message_seconds": 3600}
    assert unquote(ban.headers["X-Audit-Log-Reason"]) == reason
    assert ban.headers["X-Audit-Log-Reason"].isascii()
    assert await port.unban(GUILD_ID, USER, reason="over") == Done()
    assert await port.unban(GUILD_ID, USER, reason="over") == Gone(UNKNOWN_BAN, "Unknown Ban")
    assert fake.bans == {}
    assert sent(fake, "DELETE", f"/guilds/{GUILD_ID}/bans/{USER}") == [204, 404]


async def test_roles_go_on_and_off_and_a_member_who_left_is_gone(
    fake: FakeDiscord, port: DiscordActions
) -> None:
    """Role grant and removal answer Done; a member who left answers Unknown Member."""
    assert await port.add_role(GUILD_ID, USER, ROLE, reason="birthday") == Done()
    assert await port.remove_role(GUILD_ID, USER, ROLE, reason="birthday over") == Done()
    assert fake.role_grants == [(GUILD_ID, USER, ROLE)]
    assert fake.role_removals == [(GUILD_ID, USER, ROLE)]
    fake.remove_member(GUILD_ID, USER)
    left = Gone(UNKNOWN_MEMBER, "Unknown Member")
    assert await port.add_role(GUILD_ID, USER, ROLE, reason="birthday") == left
    assert await port.remove_role(GUILD_ID, USER, ROLE, reason="birthday over") == left


async def test_a_resent_message_with_its_nonce_posts_once(
    fake: FakeDiscord, port: DiscordActions
) -> None:
    """A message goes with its nonce and enforce_nonce and may mention only the members
    named; sent again with the same nonce, Discord returns the first and posts nothing."""
    first = await port.send_message(
        CHANNEL_ID, "Happy birthday!", nonce="bday-1", mention_user_ids=[USER]
    )
    again = await port.send_message(
        CHANNEL_ID, "Happy birthday!", nonce="bday-1", mention_user_ids=[USER]
    )
    assert isinstance(first, Done) and first.message_id > 0 and again == first
    [posted] = fake.posted_messages
    assert posted.message_id == first.message_id and posted.mention_user_ids == (USER,)
    [request, _] = [r for r in fake.requests if r.path == f"/channels/{CHANNEL_ID}/messages"]
    assert request.body["enforce_nonce"] is True and request.body["nonce"] == "bday-1"
    assert request.body["allowed_mentions"] == {"parse": [], "users": [str(USER)]}
    other = await port.send_message(CHANNEL_ID, "Another", nonce="bday-2")
    assert isinstance(other, Done) and other.message_id != first.message_id
    fake.delete_channel(CHANNEL_ID)
    assert await port.send_message(CHANNEL_ID, "x", nonce="n") == Gone(
        UNKNOWN_CHANNEL, "Unknown Channel"
    )


async def test_dms_open_a_channel_once_and_closed_dms_are_gone(
    fake: FakeDiscord, port: DiscordActions
) -> None:
    """A DM opens the user's DM channel once and posts there; a user who does not accept
    DMs answers 50007, which is permanent (the caller falls back to the channel)."""
    assert isinstance(await port.send_dm(USER, "Reminder: stretch", nonce="r1"), Done)
    assert isinstance(await port.send_dm(USER, "Reminder: water", nonce="r2"), Done)
    assert len([r for r in fake.requests if r.path == "/users/@me/channels"]) == 1
    channel = fake.dm_channel_of(USER)
    assert [m.channel_id for m in fake.posted_messages] == [channel, channel]
    fake.close_dms(USER)
    assert await port.send_dm(USER, "Reminder", nonce="r3") == Gone(
        CANNOT_DM_USER, "Cannot send messages to this user"
    )


async def test_missing_permissions_429s_and_server_errors_map_to_their_results(
    fake: FakeDiscord, port: DiscordActions
) -> None:
    """A lost permission is Forbidden, a 429 a Retry with Discord's retry_after, a 500
    a Retry without; nothing is waited out or retried inside the port."""
    fake.forbid(GUILD_ID)
    assert await port.ban(GUILD_ID, USER, reason="r") == Forbidden(
        MISSING_PERMISSIONS, "Missing Permissions"
    )
    assert isinstance(await port.add_role(GUILD_ID, USER, ROLE, reason="r"), Forbidden)
    fake.allow(GUILD_ID)
    fake.rate_limit(f"/guilds/{GUILD_ID}/bans/{USER}", method="PUT", retry_after=7.5)
    limited = await port.ban(GUILD_ID, USER, reason="r")
    assert isinstance(limited, Retry) and limited.retry_after_seconds == 7.5
    fake.fail_next(f"/guilds/{GUILD_ID}/bans/{USER}", status=500, method="PUT")
    failed = await port.ban(GUILD_ID, USER, reason="r")
    assert isinstance(failed, Retry) and not failed.rate_limited
    assert await port.ban(GUILD_ID, USER, reason="r") == Done()
    assert sent(fake, "PUT", f"/guilds/{GUILD_ID}/bans/{USER}") == [403, 429, 500, 204]


async def test_an_unreachable_discord_is_a_retry() -> None:
    """A refused connection is a transient failure, not an exception."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    async with DiscordActions(f"http://127.0.0.1:{closed_port}/api/v10", "t") as port:
        result = await port.unban(GUILD_ID, USER, reason="r")
    assert isinstance(result, Retry) and not result.rate_limited


@pytest.fixture
def limits() -> Limits:
    return Limits(
        timer_retry_seconds_min=0.05,
        timer_retry_seconds_max=0.2,
        timer_guild_backoff_seconds_min=0.2,
        timer_guild_backoff_seconds_max=0.4,
    )


async def unban_timers(store: Store, port: DiscordActions) -> TimerService:
    """A timer service whose unban kind lifts the ban through the REST port."""
    service = TimerService(store, wall_clock=time.time, poll_seconds_max=0.1)

    async def unban(timer: TimerRecord) -> None:
        settled(await port.unban(timer.guild_id, int(timer.target), reason="tempban over"))
        await store.write(lambda txn: delete_timer(txn, store, timer.target, timer.due))

    service.register("unban", unban, discord=True)
    record = TimerRecord("unban", str(USER), time.time() - 1, guild_id=GUILD_ID)
    await store.write(lambda txn: put_timer(txn, store, record.target, record))
    return service


def timers_left(store: Store) -> int:
    with store.read() as txn:
        return sum(1 for _ in txn.cursor(db=store.db("timers")))


async def test_a_timer_unbans_once_through_a_429_and_a_server_error(
    fake: FakeDiscord, port: DiscordActions, store: Store
) -> None:
    """Through the REST port, a 429 and a 500 are retried by the timer service and the
    ban is lifted exactly once; the timer is gone after it."""
    fake.ban_by_hand(GUILD_ID, USER)
    path = f"/guilds/{GUILD_ID}/bans/{USER}"
    fake.rate_limit(path, method="DELETE", retry_after=0.2)
    fake.fail_next(path, status=500, method="DELETE")
    service = await unban_timers(store, port)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        with trio.fail_after(10):
            while timers_left(store):
                await trio.sleep(0.02)
        nursery.cancel_scope.cancel()
    assert sent(fake, "DELETE", path) == [429, 500, 204]
    assert fake.bans == {} and service.parked == 0 and service.retried == 2


async def test_a_lost_permission_holds_the_unban_until_it_is_back(
    fake: FakeDiscord, port: DiscordActions, store: Store
) -> None:
    """A 403 Missing Permissions backs the guild off; once the permission is back, the
    next probe lifts the ban, once."""
    fake.ban_by_hand(GUILD_ID, USER)
    fake.forbid(GUILD_ID)
    service = await unban_timers(store, port)
    path = f"/guilds/{GUILD_ID}/bans/{USER}"
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        with trio.fail_after(10):
            while GUILD_ID not in service.guilds_backed_off():
                await trio.sleep(0.02)
        await trio.sleep(0.5)
        assert timers_left(store) == 1 and 403 in sent(fake, "DELETE", path)
        fake.allow(GUILD_ID)
        with trio.fail_after(10):
            # The handler's delete commits just before the service sees the success.
            while timers_left(store) or service.guilds_backed_off():
                await trio.sleep(0.02)
        nursery.cancel_scope.cancel()
    statuses = sent(fake, "DELETE", path)
    assert statuses[-1] == 204 and set(statuses[:-1]) == {403}
    assert service.guilds_backed_off() == {} and fake.bans == {}
