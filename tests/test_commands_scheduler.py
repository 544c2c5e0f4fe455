"""Tests of the scheduler's commands through the dispatcher, over the real domain and the
fake Discord port: permissions, typed errors, the console's discord_required, listings and
the reminders' cancel buttons; and how the Discord payloads carry their new option kinds."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio.testing

from actors import AuditLog, DiscordPort, TimerService
from actors.scheduler import Scheduler
from bot import ButtonPress, CommandSet, Invocation, OptionKind, Reply, UserRef
from bot.commands.scheduler import scheduler_commands
from bot.console_human import help_text, parse_options
from bot.http import payload
from limits import RateLimit
from metrics import Metrics
from storage import Store
from tests.support.discord_port import FakeDiscordPort

GUILD, MOD, MEMBER, OTHER = 900, 11, 22, 33
T0 = 1_800_000_000.0
_ids = itertools.count(5_000)


@asynccontextmanager
async def commands_over(
    store: Store, metrics: Metrics, port: DiscordPort | None
) -> AsyncIterator[CommandSet]:
    def now() -> float:
        return T0 + trio.current_time()

    timers = TimerService(store, wall_clock=now, poll_seconds_max=86_400)
    scheduler = Scheduler(store, timers, wall_clock=now, discord=port)
    commands, buttons = scheduler_commands(scheduler)
    async with trio.open_nursery() as nursery:
        await nursery.start(timers.run)
        yield CommandSet(
            commands, buttons, metrics=metrics, rate_limit=RateLimit(burst_commands=1_000)
        )
        nursery.cancel_scope.cancel()


async def run(
    commands: CommandSet,
    name: str,
    *,
    by: int = MEMBER,
    manage: bool = False,
    ban: bool = False,
    **options: Any,
) -> Reply:
    return await commands.invoke(
        Invocation(
            command=name,
            interaction_id=next(_ids),
            user_id=by,
            guild_id=GUILD,
            channel_id=77,
            can_manage_guild=manage,
            can_ban_members=ban,
            options=options,
        )
    )


def done(reply: Reply) -> dict[str, Any]:
    assert reply.error_code is None, (reply.error_code, reply.description)
    return dict(reply.result)


async def test_moderation_needs_ban_members_and_configuration_manage_server(
    store: Store, metrics: Metrics, autojump_clock: trio.testing.MockClock
) -> None:
    """Without Ban Members /tempban, /unban and /tempbans are refused naming it; Manage
    Server alone does not let a member ban; /modlog needs Manage Server."""
    async with commands_over(store, metrics, FakeDiscordPort()) as commands:
        for name, options in (
            ("tempban", {"user": UserRef(OTHER), "duration": "1h", "reason": "x"}),
            ("unban", {"user": UserRef(OTHER)}),
            ("tempbans", {}),
        ):
            reply = await run(commands, name, by=MOD, manage=True, **options)
            assert reply.error_code == "not_permitted", name
            assert "Ban Members" in reply.description
        reply = await run(commands, "modlog", by=MOD, ban=True, channel=5)
        assert reply.error_code == "not_permitted" and "Manage Server" in reply.description


async def test_a_tempban_command_bans_and_lists_the_time_left(
    store: Store, metrics: Metrics, autojump_clock: trio.testing.MockClock
) -> None:
    """/tempban with a moderator's rights bans at once; /tempbans shows the time left;
    /unban lifts it and says the tempban was cancelled."""
    port = FakeDiscordPort()
    async with commands_over(store, metrics, port) as commands:
        result = done(
            await run(
                commands,
                "tempban",
                by=MOD,
                ban=True,
                user=UserRef(OTHER),
                duration="1w2d",
                reason="raid",
                delete_messages="24h",
            )
        )
        assert result["seconds"] == 9 * 86_400
        assert port.calls_of("ban")[0].args["delete_message_seconds"] == 86_400
        await trio.sleep(3_600)
        listed = done(await run(commands, "tempbans", by=MOD, ban=True))["tempbans"]
        assert [t["user"] for t in listed] == [OTHER]
        assert listed[0]["seconds_left"] == 9 * 86_400 - 3_600
        unbanned = done(await run(commands, "unban", by=MOD, ban=True, user=UserRef(OTHER)))
        assert unbanned["tempban_cancelled"] is True
        assert done(await run(commands, "tempbans", by=MOD, ban=True))["tempbans"] == []


async def test_bad_durations_and_dates_come_back_as_typed_errors(
    store: Store, metrics: Metrics, autojump_clock: trio.testing.MockClock
) -> None:
    """Each input error is refused with its own code, before anything is written."""
    async with commands_over(store, metrics, FakeDiscordPort()) as commands:
        cases = [
            ("tempban", {"user": UserRef(OTHER), "duration": "soon", "reason": "x"}),
            ("tempban", {"user": UserRef(OTHER), "duration": "400d", "reason": "x"}),
            ("remind", {"in": "1h", "text": "x", "every": "30m"}),
            ("birthday-set", {"date": "02-30"}),
            ("birthday-set", {"date": "02-10", "timezone": "Moon/Base"}),
            ("tempban", {"user": UserRef(MOD), "duration": "1h", "reason": "x"}),
        ]
        codes = [(await run(commands, n, by=MOD, ban=True, **o)).error_code for n, o in cases]
    assert codes == [
        "duration_unreadable",
        "duration_out_of_range",
        "duration_out_of_range",
        "invalid_date",
        "unknown_timezone",
        "invalid_input",
    ]


async def test_commands_that_act_in_discord_need_discord(
    store: Store, metrics: Metrics, autojump_clock: trio.testing.MockClock
) -> None:
    """Without a Discord port (the console) a tempban, a birthday and a reminder answer
    discord_required and keep nothing; listings and configuration still work."""
    async with commands_over(store, metrics, None) as commands:
        for name, options in (
            ("tempban", {"user": UserRef(OTHER), "duration": "1h", "reason": "x"}),
            ("birthday-set", {"date": "05-05"}),
            ("remind", {"in": "1h", "text": "x"}),
        ):
            reply = await run(commands, name, by=MOD, ban=True, **options)
            assert reply.error_code == "discord_required", name
        assert done(await run(commands, "reminders"))["reminders"] == []
        configured = await run(commands, "birthday-config", manage=True, role=8, channel=9, hour=7)
        assert done(configured)["hour"] == 7


async def test_reminders_list_with_cancel_buttons_that_only_their_owner_can_press(
    store: Store, metrics: Metrics, autojump_clock: trio.testing.MockClock
) -> None:
    """/reminders shows one cancel button per reminder; another member's press is
    refused; the owner's press cancels, and /reminders-cancel cancels by number."""
    async with commands_over(store, metrics, FakeDiscordPort()) as commands:
        first = done(await run(commands, "remind", **{"in": "2h", "text": "tea"}))["id"]
        second = done(await run(commands, "remind", **{"in": "1h", "text": "walk", "every": "1d"}))
        listing = await run(commands, "reminders")
        assert [b.custom_id for b in listing.buttons] == [
            f"reminder-cancel:{MEMBER}:{second['id']}",
            f"reminder-cancel:{MEMBER}:{first}",
        ]
        button = listing.buttons[0].custom_id
        stranger = ButtonPress(button, next(_ids), OTHER, GUILD)
        assert (await commands.press(stranger)).error_code == "not_your_button"
        assert done(await commands.press(ButtonPress(button, next(_ids), MEMBER, GUILD)))
        assert done(await run(commands, "reminders-cancel", id=first))["text"] == "tea"
        assert (await run(commands, "reminders-cancel", id=first)).error_code == "not_found"
        assert done(await run(commands, "reminders"))["reminders"] == []


async def test_birthday_commands_set_list_and_remove(
    store: Store, metrics: Metrics, autojump_clock: trio.testing.MockClock
) -> None:
    """A member sets a birthday in their zone, the list shows it, and remove forgets it."""
    async with commands_over(store, metrics, FakeDiscordPort()) as commands:
        done(await run(commands, "birthday-config", manage=True, role=8, channel=9))
        saved = done(await run(commands, "birthday-set", date="07-14", timezone="Asia/Tokyo"))
        assert saved["timezone"] == "Asia/Tokyo" and saved["next_on"].endswith("-07-14")
        listed = done(await run(commands, "birthday-list", by=OTHER))["birthdays"]
        assert [b["user"] for b in listed] == [MEMBER]
        assert done(await run(commands, "birthday-remove"))["date"] == "07-14"
        assert (await run(commands, "birthday-remove")).error_code == "not_found"


async def test_discord_payloads_carry_channels_roles_and_ban_members(
    store: Store, metrics: Metrics, autojump_clock: trio.testing.MockClock
) -> None:
    """A channel or role option arrives as its id, Ban Members (or Administrator) sets
    can_ban_members, ban commands register for Ban Members by default, and the console
    reads channel and role mentions."""
    async with commands_over(store, metrics, FakeDiscordPort()) as commands:
        config = commands.command("birthday-config")
        tempban = commands.command("tempban")
    assert config is not None and tempban is not None
    interaction = {
        "id": "123456789",
        "guild_id": str(GUILD),
        "channel_id": "77",
        "member": {"user": {"id": str(MOD)}, "permissions": str(1 << 2)},
        "data": {
            "name": "birthday-config",
            "options": [
                {"name": "role", "type": 8, "value": "4444"},
                {"name": "channel", "type": 7, "value": "5555"},
            ],
        },
    }
    inv = payload.invocation(interaction, config)
    assert inv.options == {"role": 4444, "channel": 5555}
    assert inv.can_ban_members and not inv.can_manage_guild
    definition = payload.command_definition(tempban)
    assert definition["default_member_permissions"] == str(1 << 2)
    types = {o["name"]: o["type"] for o in payload.command_definition(config)["options"]}
    assert types["role"] == 8 and types["channel"] == 7
    assert parse_options(config, "role:<@&4444> channel:<#5555> hour:7") == {
        "role": 4444,
        "channel": 5555,
        "hour": 7,
    }
    assert {o.kind for o in config.options} >= {OptionKind.ROLE, OptionKind.CHANNEL}


async def test_help_lists_the_scheduler_commands_with_their_permissions(
    store: Store, metrics: Metrics, autojump_clock: trio.testing.MockClock
) -> None:
    """The console's /help names every scheduler command and the permission it needs."""
    async with commands_over(store, metrics, None) as commands:
        text = help_text(commands)
    for name in (
        "tempban",
        "unban",
        "tempbans",
        "modlog",
        "birthday-set",
        "birthday-remove",
        "birthday-list",
        "birthday-config",
        "remind",
        "reminders",
        "reminders-cancel",
    ):
        assert f"  /{name}" in text, name
    tempban_line = next(line for line in text.splitlines() if line.startswith("  /tempban "))
    assert tempban_line.endswith("(needs Ban Members)")
    modlog_line = next(line for line in text.splitlines() if line.startswith("  /modlog "))
    assert modlog_line.endswith("(needs Manage Server)")


async def test_configuration_commands_are_kept_in_the_audit_log(
    store: Store, metrics: Metrics, autojump_clock: trio.testing.MockClock
) -> None:
    """/modlog and /birthday-config each record who changed what, before and after."""
    async with commands_over(store, metrics, FakeDiscordPort()) as commands:
        done(await run(commands, "modlog", by=MOD, manage=True, channel=5))
        done(await run(commands, "birthday-config", by=MOD, manage=True, role=8, channel=9))
    entries = AuditLog(store, lambda: T0).page(GUILD).entries
    by_action = {entry.action: entry for entry in entries}
    assert by_action["modlog.set"].before == {"modlog_channel": 0}
    assert by_action["modlog.set"].after == {"modlog_channel": 5}
    assert by_action["birthdays.configure"].after == {
        "role": 8,
        "channel": 9,
        "hour": 9,
        "timezone": "UTC",
    }
    assert {entry.actor for entry in entries} == {f"user:{MOD}"}
