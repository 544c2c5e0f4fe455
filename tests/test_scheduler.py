"""Tests of the scheduler's domain on a real store, the timer service and the fake port,
with trio's autojump clock driving both the timers and the wall clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import pytest
import trio
import trio.testing

from actors import TimerService, check_store, keys
from actors.discord_port import MISSING_PERMISSIONS, UNKNOWN_USER, Forbidden, Gone, Retry
from actors.errors import BanRefused, NotBanned, NotFound, TooManyReminders
from actors.scheduler import Birthday, Scheduler
from actors.scheduler.records import WHERE_DM, WHERE_HERE
from limits import Limits
from metrics import Metrics
from storage import Store
from tests.conftest import sample
from tests.support.discord_port import FakeDiscordPort

GUILD, MOD, MEMBER, OTHER = 900, 11, 22, 33
CHANNEL, MODLOG_CHANNEL, BIRTHDAY_CHANNEL, ROLE = 501, 502, 503, 701
HOUR, DAY = 3_600, 86_400


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


class Server:
    """The scheduler as a server runs it; ``restart`` simulates a downtime."""

    def __init__(
        self, store: Store, port: FakeDiscordPort, start: float, fires_concurrent_max: int = 64
    ) -> None:
        self.store, self.port, self.start = store, port, start
        self.fires_concurrent_max = fires_concurrent_max
        self.scheduler: Scheduler

    def now(self) -> float:
        return self.start + trio.current_time()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Scheduler]:
        # The wall clock here is trio's clock, so the service's periodic look (for a wall
        # clock that jumps) is not needed, and at its default it would make days of mock
        # time cost a wake-up every few seconds.
        timers = TimerService(
            self.store,
            wall_clock=self.now,
            poll_seconds_max=DAY,
            fires_concurrent_max=self.fires_concurrent_max,
        )
        self.scheduler = Scheduler(self.store, timers, wall_clock=self.now, discord=self.port)
        async with trio.open_nursery() as nursery:
            await nursery.start(timers.run)
            yield self.scheduler
            nursery.cancel_scope.cancel()

    async def until(self, when: float) -> None:
        await trio.sleep(max(0.0, when - self.now()))

    def timers(self) -> int:
        with self.store.read() as txn:
            return int(txn.stat(self.store.db("timers"))["entries"])


@asynccontextmanager
async def server(
    store: Store, start: float, port: FakeDiscordPort | None = None
) -> AsyncIterator[Server]:
    running = Server(store, port or FakeDiscordPort(), start)
    async with running.running():
        yield running


async def tempban(scheduler: Scheduler, seconds: int, request: int = 1, user: int = MEMBER) -> None:
    await scheduler.tempban(
        GUILD,
        user,
        moderator=MOD,
        seconds=seconds,
        reason="spam",
        delete_message_seconds=0,
        request=request,
    )


# --- tempbans ----------------------------------------------------------------------------


async def test_a_tempban_bans_then_unbans_once_at_its_expiry(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """The ban goes out at once, the unban exactly once when the duration is over, and
    the record and timer are gone after it."""
    async with server(store, at("2027-01-15T08:00:00+00:00")) as s:
        await s.scheduler.set_modlog(GUILD, MODLOG_CHANNEL)
        await tempban(s.scheduler, 2 * HOUR)
        assert (GUILD, MEMBER) in s.port.bans
        assert s.scheduler.tempban_of(GUILD, MEMBER) is not None
        await trio.sleep(2 * HOUR - 5)
        assert s.port.calls_of("unban") == []
        await trio.sleep(10)
        assert [c.args["user_id"] for c in s.port.calls_of("unban")] == [MEMBER]
        assert s.scheduler.tempban_of(GUILD, MEMBER) is None
        await trio.sleep(60)
        assert s.timers() == 0
        posts = [m.content for m in s.port.messages if m.channel_id == MODLOG_CHANNEL]
    assert len(posts) == 2 and "banned by" in posts[0] and "expired" in posts[1]
    assert "spam" in s.port.calls_of("ban")[0].args["reason"]


async def test_a_refused_ban_removes_the_tempban_and_its_timer(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """Discord's refusal leaves nothing behind and tells the moderator why."""
    port = FakeDiscordPort()
    port.script("ban", Forbidden(MISSING_PERMISSIONS, "Missing Permissions"))
    async with server(store, at("2027-01-15T08:00:00+00:00"), port) as s:
        with pytest.raises(BanRefused) as caught:
            await tempban(s.scheduler, HOUR)
        assert "permission" in caught.value.message
        assert s.scheduler.tempban_of(GUILD, MEMBER) is None
        assert s.timers() == 0


async def test_a_refused_replacement_puts_the_earlier_tempban_back(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """A second tempban that Discord refuses restores the first and its unban time."""
    port = FakeDiscordPort()
    async with server(store, at("2027-01-15T08:00:00+00:00"), port) as s:
        await tempban(s.scheduler, HOUR, request=1)
        first = s.scheduler.tempban_of(GUILD, MEMBER)
        port.script("ban", Retry("HTTP 500"))
        with pytest.raises(BanRefused):
            await tempban(s.scheduler, 5 * HOUR, request=2)
        assert s.scheduler.tempban_of(GUILD, MEMBER) == first
        await trio.sleep(HOUR + 5)
        assert len(port.calls_of("unban")) == 1


async def test_a_new_tempban_replaces_the_old_timer(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """Tempbanning a member again moves the unban to the new expiry; the old one never
    fires."""
    async with server(store, at("2027-01-15T08:00:00+00:00")) as s:
        await tempban(s.scheduler, HOUR, request=1)
        await tempban(s.scheduler, 3 * HOUR, request=2)
        assert s.timers() == 1
        await trio.sleep(2 * HOUR)
        assert s.port.calls_of("unban") == []
        await trio.sleep(HOUR + 5)
        assert len(s.port.calls_of("unban")) == 1


async def test_a_ban_lifted_in_discord_cancels_the_pending_unban(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """After GUILD_BAN_REMOVE the tempban is gone and no unban is ever sent, so a ban
    placed later by hand is not undone by the stale timer."""
    async with server(store, at("2027-01-15T08:00:00+00:00")) as s:
        await tempban(s.scheduler, HOUR)
        assert await s.scheduler.ban_lifted(GUILD, MEMBER) is True
        s.port.bans[(GUILD, MEMBER)] = "banned again by hand"
        await trio.sleep(2 * HOUR)
        assert s.port.calls_of("unban") == []
        assert s.timers() == 0
        assert await s.scheduler.ban_lifted(GUILD, MEMBER) is False


async def test_unban_lifts_the_ban_and_cancels_the_tempban(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """/unban sends one unban, forgets the tempban, and says when no ban existed."""
    async with server(store, at("2027-01-15T08:00:00+00:00")) as s:
        await tempban(s.scheduler, HOUR)
        assert await s.scheduler.unban(GUILD, MEMBER, moderator=MOD, reason="appeal") is True
        assert s.timers() == 0
        with pytest.raises(NotBanned):
            await s.scheduler.unban(GUILD, MEMBER, moderator=MOD, reason="again")
        await trio.sleep(2 * HOUR)
        assert len(s.port.calls_of("unban")) == 2


async def test_a_tempban_of_an_unknown_user_is_refused(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """A user id Discord does not know is refused, naming it; nothing is kept."""
    port = FakeDiscordPort()
    port.script("ban", Gone(UNKNOWN_USER, "Unknown User"))
    async with server(store, at("2027-01-15T08:00:00+00:00"), port) as s:
        with pytest.raises(BanRefused) as caught:
            await tempban(s.scheduler, HOUR)
        assert "does not know" in caught.value.message
        assert s.scheduler.tempbans(GUILD) == []


async def test_timers_fire_in_due_order(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """Tempbans written in any order are lifted soonest first."""
    async with server(store, at("2027-01-15T08:00:00+00:00")) as s:
        for user, hours in ((101, 5), (102, 1), (103, 3), (104, 2), (105, 4)):
            await tempban(s.scheduler, hours * HOUR, request=user, user=user)
        assert [r.user for r in s.scheduler.tempbans(GUILD)] == [102, 104, 103, 105, 101]
        await trio.sleep(6 * HOUR)
        assert [c.args["user_id"] for c in s.port.calls_of("unban")] == [102, 104, 103, 105, 101]


async def test_an_unban_due_during_a_downtime_fires_at_start_oldest_first(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """Unbans that fell due while the server was down fire once each when it is back,
    oldest first (one at a time here, so the order of starting is the order of calls)."""
    running = Server(store, FakeDiscordPort(), at("2027-01-15T08:00:00+00:00"), 1)
    async with running.running() as scheduler:
        await tempban(scheduler, 2 * HOUR, request=1, user=101)
        await tempban(scheduler, HOUR, request=2, user=102)
    autojump_clock.jump(5 * HOUR)
    assert running.port.calls_of("unban") == []
    async with running.running():
        await trio.sleep(1)
        assert [c.args["user_id"] for c in running.port.calls_of("unban")] == [102, 101]
        await trio.sleep(HOUR)
    assert len(running.port.calls_of("unban")) == 2


# --- birthdays ---------------------------------------------------------------------------


async def configure(scheduler: Scheduler, tz: str = "UTC", hour: int = 9) -> None:
    await scheduler.configure_birthdays(
        GUILD, role=ROLE, channel=BIRTHDAY_CHANNEL, hour=hour, timezone=tz
    )


def holds_role(s: Server, user: int = MEMBER) -> bool:
    return (GUILD, user, ROLE) in s.port.roles


async def test_the_role_is_held_from_midnight_to_midnight_in_the_members_zone(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """A Tokyo member's role comes at 15:00 UTC the day before and goes 24 h later; the
    announcement is posted once at the guild's hour in the guild's zone."""
    async with server(store, at("2027-03-01T00:00:00+00:00")) as s:
        await configure(s.scheduler, "UTC", hour=9)
        await s.scheduler.set_birthday(GUILD, MEMBER, Birthday(3, 10), "Asia/Tokyo")
        await s.until(at("2027-03-09T14:59:00+00:00"))
        assert not holds_role(s)
        await s.until(at("2027-03-09T15:00:05+00:00"))
        assert holds_role(s)
        await s.until(at("2027-03-10T09:00:05+00:00"))
        announced = [m for m in s.port.messages if m.channel_id == BIRTHDAY_CHANNEL]
        assert len(announced) == 1 and f"<@{MEMBER}>" in announced[0].content
        assert holds_role(s)
        await s.until(at("2027-03-10T15:00:05+00:00"))
        assert not holds_role(s)
        assert len(s.port.calls_of("add_role")) == 1
        assert len(s.port.calls_of("remove_role")) == 1
        assert s.timers() == 3


async def test_a_birthday_on_a_daylight_saving_change_lasts_23_hours(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """A Paris member born on 28 March holds the role for 23 hours in 2027, when the
    clocks go forward that night."""
    async with server(store, at("2027-03-20T00:00:00+00:00")) as s:
        await configure(s.scheduler, "Europe/Paris")
        await s.scheduler.set_birthday(GUILD, MEMBER, Birthday(3, 28), None)
        await s.until(at("2027-03-27T23:00:05+00:00"))
        assert holds_role(s)
        await s.until(at("2027-03-28T21:59:00+00:00"))
        assert holds_role(s)
        await s.until(at("2027-03-28T22:00:05+00:00"))
        assert not holds_role(s)


async def test_29_february_is_celebrated_on_28_february(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """In 2027, which has no 29 February, a leap-day member gets the role on 28 February."""
    async with server(store, at("2027-02-20T00:00:00+00:00")) as s:
        await configure(s.scheduler)
        view = await s.scheduler.set_birthday(GUILD, MEMBER, Birthday(2, 29), None)
        assert view.next.on.isoformat() == "2027-02-28"
        await s.until(at("2027-02-28T00:00:05+00:00"))
        assert holds_role(s)
        await s.until(at("2027-03-01T00:00:05+00:00"))
        assert not holds_role(s)


async def test_a_birthday_set_on_the_day_grants_the_role_at_once(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """Setting today's date gives the role within a second, not next year."""
    async with server(store, at("2027-06-01T12:00:00+00:00")) as s:
        await configure(s.scheduler)
        await s.scheduler.set_birthday(GUILD, MEMBER, Birthday(6, 1), None)
        await trio.sleep(1)
        assert holds_role(s)


async def test_a_birthday_missed_during_a_downtime_is_not_granted_but_the_role_goes(
    store: Store, autojump_clock: trio.testing.MockClock, metrics: Metrics
) -> None:
    """Down over the whole birthday: no grant and no announcement afterwards (both are
    dropped and counted), and the removal is still sent."""
    running = Server(store, FakeDiscordPort(), at("2027-06-01T12:00:00+00:00"))
    async with running.running() as scheduler:
        await configure(scheduler)
        await scheduler.set_birthday(GUILD, MEMBER, Birthday(6, 5), None)
    autojump_clock.jump(at("2027-06-07T00:00:00+00:00") - running.now())
    async with running.running():
        await trio.sleep(5)
    assert running.port.calls_of("add_role") == []
    assert running.port.messages == []
    assert len(running.port.calls_of("remove_role")) == 1
    assert sample(metrics, "croupier_scheduler_dropped_total", kind="birthday_grant") == 1
    assert sample(metrics, "croupier_scheduler_dropped_total", kind="birthday_announce") == 1


async def test_a_downtime_ending_on_the_birthday_still_grants_it(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """Back at 10:00 on the birthday: the role is granted and announced at once."""
    running = Server(store, FakeDiscordPort(), at("2027-06-01T12:00:00+00:00"))
    async with running.running() as scheduler:
        await configure(scheduler)
        await scheduler.set_birthday(GUILD, MEMBER, Birthday(6, 5), None)
    autojump_clock.jump(at("2027-06-05T10:00:00+00:00") - running.now())
    async with running.running():
        await trio.sleep(5)
        assert holds_role(running)
        assert len(running.port.messages) == 1


async def test_removing_a_birthday_takes_the_role_off(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """/birthday remove on the day removes the role and every timer of the birthday."""
    async with server(store, at("2027-06-05T12:00:00+00:00")) as s:
        await configure(s.scheduler)
        await s.scheduler.set_birthday(GUILD, MEMBER, Birthday(6, 5), None)
        await trio.sleep(1)
        assert holds_role(s)
        await s.scheduler.remove_birthday(GUILD, MEMBER)
        assert not holds_role(s)
        await trio.sleep(60)
        assert s.timers() == 0
        with pytest.raises(NotFound):
            await s.scheduler.remove_birthday(GUILD, MEMBER)


async def test_a_member_who_left_keeps_their_birthday(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """A grant to a member who left ends that timer; the date stays and next year's
    birthday is granted once they are back."""
    port = FakeDiscordPort()
    port.absent_members.add(MEMBER)
    async with server(store, at("2027-06-01T00:00:00+00:00"), port) as s:
        await configure(s.scheduler)
        await s.scheduler.set_birthday(GUILD, MEMBER, Birthday(6, 5), None)
        await s.until(at("2027-06-06T00:00:05+00:00"))
        assert not holds_role(s)
        assert s.scheduler.birthday_of(GUILD, MEMBER) is not None
        port.absent_members.discard(MEMBER)
        await s.until(at("2028-06-05T00:00:05+00:00"))
        assert holds_role(s)


async def test_changing_the_guilds_hour_moves_pending_announcements(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """After /birthday-config moves the hour from 9 to 18, the announcement comes at 18."""
    async with server(store, at("2027-06-01T00:00:00+00:00")) as s:
        await configure(s.scheduler, hour=9)
        await s.scheduler.set_birthday(GUILD, MEMBER, Birthday(6, 5), None)
        await configure(s.scheduler, hour=18)
        await s.until(at("2027-06-05T17:59:00+00:00"))
        assert s.port.messages == []
        await s.until(at("2027-06-05T18:00:05+00:00"))
        assert len(s.port.messages) == 1
        assert s.timers() == 3


# --- reminders ---------------------------------------------------------------------------


async def remind(
    scheduler: Scheduler,
    seconds: int,
    *,
    every: int = 0,
    where: str = WHERE_HERE,
    request: int = 1,
    text: str = "stretch",
) -> int:
    record = await scheduler.remind(
        GUILD,
        MEMBER,
        channel=CHANNEL,
        where=where,
        text=text,
        seconds=seconds,
        every=every,
        request=request,
    )
    return record.number


async def test_a_reminder_is_posted_once_when_due(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """A reminder in a channel mentions its member once, at its time, and is gone after."""
    async with server(store, at("2027-01-15T08:00:00+00:00")) as s:
        await remind(s.scheduler, 90 * 60)
        await trio.sleep(90 * 60 - 5)
        assert s.port.messages == []
        await trio.sleep(10)
        assert [m.content for m in s.port.messages] == [f"<@{MEMBER}> ⏰ stretch"]
        assert s.port.messages[0].mention_user_ids == (MEMBER,)
        assert s.scheduler.reminders(GUILD, MEMBER) == []


async def test_a_redelivered_request_makes_one_reminder(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """The same interaction twice keeps one reminder."""
    async with server(store, at("2027-01-15T08:00:00+00:00")) as s:
        first = await remind(s.scheduler, HOUR, request=7)
        again = await remind(s.scheduler, HOUR, request=7)
        assert first == again and len(s.scheduler.reminders(GUILD, MEMBER)) == 1


@pytest.mark.parametrize(("down_hours", "delivered"), [(2 * 24, True), (8 * 24, False)])
async def test_a_late_reminder_is_delivered_with_a_note_or_dropped(
    store: Store,
    autojump_clock: trio.testing.MockClock,
    metrics: Metrics,
    down_hours: int,
    delivered: bool,
) -> None:
    """Two days late: delivered, saying how late. Eight days late: dropped and counted."""
    running = Server(store, FakeDiscordPort(), at("2027-01-15T08:00:00+00:00"))
    async with running.running() as scheduler:
        await remind(scheduler, HOUR)
    autojump_clock.jump(HOUR + down_hours * HOUR)
    async with running.running() as scheduler:
        await trio.sleep(5)
        assert scheduler.reminders(GUILD, MEMBER) == []
    contents = [m.content for m in running.port.messages]
    if delivered:
        assert len(contents) == 1 and "2 d late" in contents[0]
    else:
        assert contents == []
        assert sample(metrics, "croupier_scheduler_dropped_total", kind="reminder") == 1


async def test_a_recurring_reminder_fires_every_period_and_once_after_a_downtime(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """Every hour: three posts in three hours; after five hours down, one late post and
    then hourly again."""
    running = Server(store, FakeDiscordPort(), at("2027-01-15T08:00:00+00:00"))
    async with running.running() as scheduler:
        await remind(scheduler, HOUR, every=HOUR)
        await trio.sleep(3 * HOUR + 5)
        assert len(running.port.messages) == 3
    autojump_clock.jump(5 * HOUR)
    async with running.running() as scheduler:
        await trio.sleep(5)
        assert len(running.port.messages) == 4 and "late" in running.port.messages[3].content
        await trio.sleep(HOUR)
        assert len(running.port.messages) == 5
        assert len(scheduler.reminders(GUILD, MEMBER)) == 1


async def test_an_undeliverable_dm_falls_back_to_the_channel(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """A member who closed their DMs is reminded in the channel, with a mention."""
    port = FakeDiscordPort()
    port.closed_dms.add(MEMBER)
    async with server(store, at("2027-01-15T08:00:00+00:00"), port) as s:
        await remind(s.scheduler, HOUR, where=WHERE_DM)
        await trio.sleep(HOUR + 5)
        assert len(port.calls_of("send_dm")) == 1
        assert [m.channel_id for m in port.messages] == [CHANNEL]


async def test_a_channel_the_bot_cannot_post_in_ends_the_reminder(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """Missing access to the channel is permanent for a reminder: it is not retried."""
    port = FakeDiscordPort()
    port.script("send_message", Forbidden(MISSING_PERMISSIONS, "Missing Permissions"))
    async with server(store, at("2027-01-15T08:00:00+00:00"), port) as s:
        await remind(s.scheduler, HOUR, every=HOUR)
        await trio.sleep(3 * HOUR)
        assert len(port.calls_of("send_message")) == 1
        assert s.scheduler.reminders(GUILD, MEMBER) == []
        assert s.timers() == 0


async def test_a_member_has_at_most_25_reminders_and_cancels_their_own(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """The 26th is refused; a cancelled one never fires; another member's number is
    not found."""
    limits = Limits()
    async with server(store, at("2027-01-15T08:00:00+00:00")) as s:
        numbers = [
            await remind(s.scheduler, HOUR, request=n + 1)
            for n in range(limits.reminders_per_member_max)
        ]
        with pytest.raises(TooManyReminders):
            await remind(s.scheduler, HOUR, request=99)
        await s.scheduler.cancel_reminder(GUILD, MEMBER, numbers[0])
        with pytest.raises(NotFound):
            await s.scheduler.cancel_reminder(GUILD, OTHER, numbers[1])
        await trio.sleep(HOUR + 5)
        assert len(s.port.messages) == limits.reminders_per_member_max - 1


async def test_the_integrity_check_accepts_every_scheduler_timer_and_flags_a_stray_one(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """Tempbans, birthdays, reminders and modlog posts pass the check with their timers;
    an unban timer whose tempban is gone is reported."""
    async with server(store, at("2027-01-15T08:00:00+00:00")) as s:
        await s.scheduler.set_modlog(GUILD, MODLOG_CHANNEL)
        await configure(s.scheduler)
        await tempban(s.scheduler, HOUR)
        await s.scheduler.set_birthday(GUILD, MEMBER, Birthday(6, 5), "Europe/Paris")
        await remind(s.scheduler, HOUR, every=HOUR)
        report = check_store(store)
        assert report.ok, report.violations
        assert report.figures["timers"] >= 5

        def orphan(txn: Any) -> None:
            txn.delete(keys.member_key(GUILD, MEMBER), db=store.db("tempbans"))

        await store.write(orphan)
        report = check_store(store)
        assert not report.ok
        assert report.counts["timer_has_live_owner"] == 1


async def test_a_rate_limited_unban_is_sent_again_after_retry_after(
    store: Store, autojump_clock: trio.testing.MockClock, metrics: Metrics
) -> None:
    """A 429 on the unban is tried again once Discord's retry_after is over, without
    counting as a failure; the second answer lifts the ban and ends the timer."""
    port = FakeDiscordPort()
    async with server(store, at("2027-01-15T08:00:00+00:00"), port) as s:
        await tempban(s.scheduler, HOUR)
        port.script("unban", Retry("HTTP 429", retry_after_seconds=30.0))
        await trio.sleep(HOUR + 5)
        assert len(port.calls_of("unban")) == 1
        assert (GUILD, MEMBER) in port.bans
        await trio.sleep(40)
        assert len(port.calls_of("unban")) == 2
        assert (GUILD, MEMBER) not in port.bans
        await trio.sleep(HOUR)
        assert len(port.calls_of("unban")) == 2 and s.timers() == 0
    assert sample(metrics, "croupier_timers_failures_total", kind="unban") == 0


async def test_a_lost_permission_holds_the_guilds_birthday_roles_until_it_is_back(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """While the bot lacks Manage Roles the grant is not repeated every minute; once the
    permission is back the waiting grant goes through, still on the birthday."""
    port = FakeDiscordPort()
    port.forbid(GUILD)
    async with server(store, at("2027-06-05T01:00:00+00:00"), port) as s:
        await configure(s.scheduler)
        await s.scheduler.set_birthday(GUILD, MEMBER, Birthday(6, 5), None)
        await trio.sleep(HOUR)
        attempts = len(port.calls_of("add_role"))
        assert 1 <= attempts <= 8
        port.allow(GUILD)
        await s.until(at("2027-06-05T20:00:00+00:00"))
        assert holds_role(s)


async def test_a_dm_refused_with_a_403_falls_back_without_backing_off_the_guild(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """A DM refused as forbidden is the member's setting, not a guild permission: the
    reminder goes to the channel at once and the guild's other timers are not held."""
    port = FakeDiscordPort()
    port.script("send_dm", Forbidden(50001, "Missing Access"))
    async with server(store, at("2027-01-15T08:00:00+00:00"), port) as s:
        await remind(s.scheduler, HOUR, where=WHERE_DM)
        await trio.sleep(HOUR + 5)
        assert [m.channel_id for m in port.messages] == [CHANNEL]
        assert s.scheduler.timers.guilds_backed_off() == {}
