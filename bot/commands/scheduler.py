"""The scheduler's commands: tempbans, the modlog, birthdays and reminders.

The command model has no subcommands: ``/birthday set`` is ``/birthday-set``. Moderation
needs Ban Members, configuration Manage Server. A command that acts in Discord (a ban, a
role, a message) answers ``discord_required`` on a transport without Discord (the
console): pretending there would keep records of bans and roles that never happened.
Listings, configuration and cancelling a reminder only touch the store: they work anywhere.
"""

from __future__ import annotations

from actors import AuditLog
from actors.errors import DiscordRequired, GuildOnly, InvalidInput, NotFound, format_span
from actors.scheduler import Scheduler, parse_birthday, parse_duration
from actors.scheduler.records import WHERE_DM, WHERE_HERE, ReminderRecord, SchedulerConfig
from bot.commands.common import NotYourButton, audit_command
from bot.commands.render import clip, mention, role_mention, timestamp
from bot.model import (
    Button,
    ButtonPress,
    ButtonRoute,
    ButtonStyle,
    Command,
    Field,
    Invocation,
    Option,
    OptionKind,
    Reply,
    UserRef,
)
from limits import reminder_shown_chars_max, tempban_reason_chars_max, timezone_name_chars_max

REMINDER_CANCEL_PREFIX = "reminder-cancel"
DELETE_MESSAGES_CHOICES = ("none", "1h", "6h", "12h", "24h", "3d", "7d")


def scheduler_commands(
    scheduler: Scheduler,
) -> tuple[tuple[Command, ...], tuple[ButtonRoute, ...]]:
    """The scheduler's commands and its button route, for ``build_command_set``."""
    handlers = _SchedulerCommands(scheduler, AuditLog(scheduler.store, scheduler.now))
    return handlers.commands(), (ButtonRoute(REMINDER_CANCEL_PREFIX, handlers.press_cancel),)


def _reason(*, required: bool) -> Option:
    return Option(
        "reason",
        OptionKind.STRING,
        "Why (kept in Discord's audit log)",
        required=required,
        max_length=tempban_reason_chars_max,
    )


def _guild(inv: Invocation | ButtonPress) -> int:
    if inv.guild_id == 0:
        raise GuildOnly()
    return inv.guild_id


class _SchedulerCommands:
    def __init__(self, scheduler: Scheduler, audit: AuditLog) -> None:
        self.scheduler = scheduler
        # The configuration commands are admin changes, kept in the audit log as the
        # economy's are; bans keep their reasons in Discord's own audit log.
        self.audit = audit
        self.limits = scheduler.limits

    def _needs_discord(self, inv: Invocation) -> None:
        if self.scheduler.discord is None:
            raise DiscordRequired(f"/{inv.command}")

    def commands(self) -> tuple[Command, ...]:
        return self._moderation_commands() + self._birthday_commands() + self._reminder_commands()

    def _moderation_commands(self) -> tuple[Command, ...]:
        user = Option("user", OptionKind.USER, "The member (or a user id, for one not here)")
        return (
            Command(
                "tempban",
                "Ban a member for a while (90m, 2h, 7d, 1w2d)",
                (
                    user,
                    Option("duration", OptionKind.STRING, "How long: 1m to 365d", max_length=32),
                    _reason(required=True),
                    Option(
                        "delete_messages",
                        OptionKind.STRING,
                        "Delete their messages of the last ... (default none)",
                        required=False,
                        choices=DELETE_MESSAGES_CHOICES,
                    ),
                ),
                self._tempban,
                ban_members_only=True,
            ),
            Command(
                "unban",
                "Lift a ban now (and cancel its tempban)",
                (user, _reason(required=False)),
                self._unban,
                ban_members_only=True,
            ),
            Command(
                "tempbans",
                "This server's tempbans and their time left",
                (),
                self._tempbans,
                ban_members_only=True,
            ),
            Command(
                "modlog",
                "Post every ban, unban and tempban expiry to a channel",
                (Option("channel", OptionKind.CHANNEL, "The moderation log channel"),),
                self._modlog,
                admin_only=True,
            ),
        )

    def _birthday_commands(self) -> tuple[Command, ...]:
        timezone = Option(
            "timezone",
            OptionKind.STRING,
            "An IANA time zone such as Europe/Paris",
            required=False,
            max_length=timezone_name_chars_max,
        )
        return (
            Command(
                "birthday-set",
                "Set your birthday (MM-DD) for the birthday role",
                (
                    Option("date", OptionKind.STRING, "Month and day, MM-DD", max_length=20),
                    timezone,
                ),
                self._birthday_set,
            ),
            Command("birthday-remove", "Forget your birthday", (), self._birthday_remove),
            Command("birthday-list", "The next birthdays here", (), self._birthday_list),
            Command(
                "birthday-config",
                "Set the birthday role, channel, hour and time zone",
                (
                    Option("role", OptionKind.ROLE, "The role members hold on their birthday"),
                    Option("channel", OptionKind.CHANNEL, "Where birthdays are announced"),
                    Option(
                        "hour",
                        OptionKind.INTEGER,
                        "The announcement hour, 0-23 (default 9)",
                        required=False,
                        min_value=0,
                        max_value=23,
                    ),
                    Option(
                        timezone.name,
                        timezone.kind,
                        "The server's time zone (default UTC)",
                        required=False,
                        max_length=timezone_name_chars_max,
                    ),
                ),
                self._birthday_config,
                admin_only=True,
            ),
        )

    def _reminder_commands(self) -> tuple[Command, ...]:
        return (
            Command(
                "remind",
                "Remind you of something later (90m, 2h, 7d)",
                (
                    Option("in", OptionKind.STRING, "When: 1m to 365d from now", max_length=32),
                    Option(
                        "text",
                        OptionKind.STRING,
                        "What to remind you of",
                        max_length=self.limits.reminder_text_chars_max,
                    ),
                    Option(
                        "where",
                        OptionKind.STRING,
                        "here (this channel, default) or dm",
                        required=False,
                        choices=(WHERE_HERE, WHERE_DM),
                    ),
                    Option(
                        "every",
                        OptionKind.STRING,
                        "Repeat this often (at least 1h)",
                        required=False,
                        max_length=32,
                    ),
                ),
                self._remind,
            ),
            Command("reminders", "Your reminders, each with a cancel button", (), self._reminders),
            Command(
                "reminders-cancel",
                "Cancel one of your reminders",
                (Option("id", OptionKind.INTEGER, "The reminder's number", min_value=1),),
                self._reminders_cancel,
            ),
        )

    # --- tempbans -------------------------------------------------------------------------

    async def _tempban(self, inv: Invocation) -> Reply:
        guild = _guild(inv)
        self._needs_discord(inv)
        target: UserRef = inv.options["user"]
        if target.id == inv.user_id:
            raise InvalidInput("user", "you cannot tempban yourself")
        seconds = parse_duration(
            inv.options["duration"],
            field="duration",
            minimum_seconds=self.limits.tempban_seconds_min,
            maximum_seconds=self.limits.tempban_seconds_max,
        )
        delete = inv.options.get("delete_messages", "none")
        delete_seconds = (
            0
            if delete == "none"
            else parse_duration(
                delete, field="delete_messages", minimum_seconds=1, maximum_seconds=7 * 86_400
            )
        )
        record = await self.scheduler.tempban(
            guild,
            target.id,
            moderator=inv.user_id,
            seconds=seconds,
            reason=inv.options["reason"],
            delete_message_seconds=delete_seconds,
            request=inv.interaction_id,
        )
        return Reply(
            title="Tempbanned",
            description=(
                f"{mention(target.id)} is banned for {format_span(seconds)}, until "
                f"{timestamp(record.until, 'f')} ({timestamp(record.until)})."
            ),
            fields=(Field("Reason", clip(record.reason, 1000), inline=False),),
            ephemeral=True,
            result={"user": target.id, "until": record.until, "seconds": seconds},
        )

    async def _unban(self, inv: Invocation) -> Reply:
        guild = _guild(inv)
        self._needs_discord(inv)
        target: UserRef = inv.options["user"]
        reason = inv.options.get("reason") or "no reason given"
        cancelled = await self.scheduler.unban(
            guild, target.id, moderator=inv.user_id, reason=reason
        )
        note = " Its pending tempban is cancelled." if cancelled else ""
        return Reply(
            title="Unbanned",
            description=f"{mention(target.id)} is no longer banned.{note}",
            ephemeral=True,
            result={"user": target.id, "tempban_cancelled": cancelled},
        )

    async def _tempbans(self, inv: Invocation) -> Reply:
        guild = _guild(inv)
        now = self.scheduler.now()
        records = self.scheduler.tempbans(guild)
        lines = [
            f"{mention(r.user)} · {format_span(max(0, int(r.until - now)))} left "
            f"({timestamp(r.until)}) · by {mention(r.moderator)} · {clip(r.reason, 80)}"
            for r in records
        ]
        return Reply(
            title="Tempbans",
            description="\n".join(lines) or "No tempbans here.",
            ephemeral=True,
            result={
                "tempbans": [
                    {
                        "user": r.user,
                        "until": r.until,
                        "seconds_left": max(0, int(r.until - now)),
                        "moderator": r.moderator,
                        "reason": r.reason,
                    }
                    for r in records
                ]
            },
        )

    async def _modlog(self, inv: Invocation) -> Reply:
        channel: int = inv.options["channel"]
        guild = _guild(inv)
        before = self.scheduler.config(guild).modlog_channel
        await self.scheduler.set_modlog(guild, channel)
        await audit_command(
            self.audit,
            inv,
            "modlog.set",
            "scheduler",
            {"modlog_channel": before},
            {"modlog_channel": channel},
        )
        return Reply(
            title="Modlog set",
            description=f"Bans, unbans and tempban expiries are posted to <#{channel}>.",
            ephemeral=True,
            result={"modlog_channel": channel},
        )

    # --- birthdays ------------------------------------------------------------------------

    async def _birthday_set(self, inv: Invocation) -> Reply:
        guild = _guild(inv)
        self._needs_discord(inv)
        birthday = parse_birthday(inv.options["date"])
        view = await self.scheduler.set_birthday(
            guild, inv.user_id, birthday, inv.options.get("timezone")
        )
        zone_name = view.record.tz or f"the server's ({self.scheduler.config(guild).timezone})"
        return Reply(
            title="Birthday saved",
            description=(
                f"Your birthday is {birthday.text()}, in {zone_name} time zone; the next one "
                f"starts {timestamp(view.next.starts, 'f')}."
            ),
            ephemeral=True,
            result={
                "date": birthday.text(),
                "timezone": view.record.tz,
                "next_starts": view.next.starts,
                "next_on": view.next.on.isoformat(),
            },
        )

    async def _birthday_remove(self, inv: Invocation) -> Reply:
        guild = _guild(inv)
        self._needs_discord(inv)
        record = await self.scheduler.remove_birthday(guild, inv.user_id)
        return Reply(
            title="Birthday removed",
            description=f"Croupier forgot your birthday ({record.month:02d}-{record.day:02d}).",
            ephemeral=True,
            result={"date": f"{record.month:02d}-{record.day:02d}"},
        )

    async def _birthday_list(self, inv: Invocation) -> Reply:
        views = self.scheduler.birthdays(_guild(inv))
        lines = [
            f"{mention(v.record.user)} · {v.next.on.strftime('%d %B')} · {timestamp(v.next.starts)}"
            for v in views
        ]
        return Reply(
            title="Next birthdays",
            description="\n".join(lines) or "No birthdays set here; add yours with /birthday-set.",
            result={
                "birthdays": [
                    {"user": v.record.user, "on": v.next.on.isoformat(), "starts": v.next.starts}
                    for v in views
                ]
            },
        )

    async def _birthday_config(self, inv: Invocation) -> Reply:
        role: int = inv.options["role"]
        channel: int = inv.options["channel"]
        guild = _guild(inv)
        before = _birthday_settings(self.scheduler.config(guild))
        config = await self.scheduler.configure_birthdays(
            guild,
            role=role,
            channel=channel,
            hour=inv.options.get("hour"),
            timezone=inv.options.get("timezone"),
        )
        after = _birthday_settings(config)
        await audit_command(self.audit, inv, "birthdays.configure", "scheduler", before, after)
        return Reply(
            title="Birthdays configured",
            description=(
                f"Members get {role_mention(role)} on their birthday; announcements go to "
                f"<#{channel}> at {config.birthday_hour:02d}:00 ({config.timezone})."
            ),
            ephemeral=True,
            result={
                "role": role,
                "channel": channel,
                "hour": config.birthday_hour,
                "timezone": config.timezone,
            },
        )

    # --- reminders ------------------------------------------------------------------------

    async def _remind(self, inv: Invocation) -> Reply:
        guild = _guild(inv)
        self._needs_discord(inv)
        seconds = parse_duration(
            inv.options["in"],
            field="in",
            minimum_seconds=self.limits.reminder_seconds_min,
            maximum_seconds=self.limits.reminder_seconds_max,
        )
        every_text = inv.options.get("every")
        every = (
            0
            if every_text is None
            else parse_duration(
                every_text,
                field="every",
                minimum_seconds=self.limits.reminder_every_seconds_min,
                maximum_seconds=self.limits.reminder_seconds_max,
            )
        )
        record = await self.scheduler.remind(
            guild,
            inv.user_id,
            channel=inv.channel_id,
            where=inv.options.get("where", WHERE_HERE),
            text=inv.options["text"],
            seconds=seconds,
            every=every,
            request=inv.interaction_id,
        )
        repeat = f", then every {format_span(record.every)}" if record.every else ""
        return Reply(
            title=f"Reminder #{record.number} set",
            description=f"Croupier reminds you {timestamp(record.due)}{repeat}.",
            ephemeral=True,
            result=_reminder_result(record),
        )

    async def _reminders(self, inv: Invocation) -> Reply:
        records = self.scheduler.reminders(_guild(inv), inv.user_id)
        lines = [_reminder_line(r) for r in records]
        buttons = tuple(
            Button(
                f"{REMINDER_CANCEL_PREFIX}:{inv.user_id}:{r.number}",
                f"Cancel #{r.number}",
                ButtonStyle.DANGER,
            )
            for r in records
        )
        return Reply(
            title="Your reminders",
            description="\n".join(lines) or "You have no reminders; set one with /remind.",
            buttons=buttons,
            ephemeral=True,
            result={"reminders": [_reminder_result(r) for r in records]},
        )

    async def _reminders_cancel(self, inv: Invocation) -> Reply:
        return await self._cancel(_guild(inv), inv.user_id, inv.options["id"])

    async def press_cancel(self, press: ButtonPress) -> Reply:
        parts = press.custom_id.split(":")
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            raise NotFound("button", press.custom_id)
        owner, number = int(parts[1]), int(parts[2])
        if owner != press.user_id:
            raise NotYourButton(owner)
        return await self._cancel(_guild(press), owner, number)

    async def _cancel(self, guild: int, user: int, number: int) -> Reply:
        record = await self.scheduler.cancel_reminder(guild, user, number)
        return Reply(
            title=f"Reminder #{record.number} cancelled",
            description=clip(record.text, reminder_shown_chars_max),
            ephemeral=True,
            result=_reminder_result(record),
        )


def _birthday_settings(config: SchedulerConfig) -> dict[str, object]:
    return {
        "role": config.birthday_role,
        "channel": config.birthday_channel,
        "hour": config.birthday_hour,
        "timezone": config.timezone,
    }


def _reminder_line(record: ReminderRecord) -> str:
    parts = [f"**#{record.number}** {timestamp(record.due)}"]
    if record.every:
        parts.append(f"every {format_span(record.every)}")
    if record.where == WHERE_DM:
        parts.append("by DM")
    parts.append(clip(record.text, reminder_shown_chars_max))
    return " · ".join(parts)


def _reminder_result(record: ReminderRecord) -> dict[str, object]:
    return {
        "id": record.number,
        "due": record.due,
        "every": record.every,
        "where": record.where,
        "text": record.text,
    }
