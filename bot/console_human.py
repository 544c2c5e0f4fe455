"""The console's human mode: lines typed as in Discord, replies printed as text.

``/pay user:43 amount:50 reason:"a b"`` runs a command, a number presses a button of
the last reply, and ``/help``, ``/as``, ``/guild`` and ``/admin`` are the console's own
commands; a reply is printed with its fields and its buttons as numbered choices.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from actors.errors import InvalidInput
from bot.console_session import BadRequest, ConsoleSession, option_kind
from bot.dispatch import CommandSet, error_reply
from bot.inputs import number_from_text, snowflake
from bot.model import ButtonPress, Command, Invocation, Option, OptionKind, Reply, UserRef

_MENTION = re.compile(r"<@!?([0-9]{1,20})>")
# A channel or role option typed as its mention (<#id>, <@&id>) or as its bare id.
_CHANNEL_OR_ROLE = re.compile(r"<(?:#|@&)([0-9]{1,20})>|([0-9]{1,20})")
_BUTTON_NUMBER = re.compile(r"[0-9]{1,3}")
_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0"})


async def serve_human(session: ConsoleSession, line: str | BadRequest) -> bool:
    """Handle one typed line; return False when the user asked to leave."""
    try:
        if isinstance(line, BadRequest):
            raise line
        text = line.strip()
        if not text:
            return True
        if _BUTTON_NUMBER.fullmatch(text):
            await _press_numbered(session, int(text))
            return True
        name, _, rest = text.removeprefix("/").partition(" ")
        if name == "quit":
            return False
        if name in _CONSOLE_COMMANDS:
            await session.write(_console_command(session, name, rest.strip()))
            return True
        inv = Invocation(
            command=name,
            interaction_id=session.ids.next(),
            user_id=session.user_id,
            guild_id=session.guild_id,
            can_manage_guild=session.admin,
            # The console's admin holds every permission a command can ask for.
            can_ban_members=session.admin,
            options=parse_options(session.commands.command(name), rest),
        )
        await _show(session, await session.commands.invoke(inv))
    except BadRequest as err:
        await session.write(f"error: {err}\n")
    except InvalidInput as err:
        await session.write(format_reply(error_reply(err)))
    except Exception:
        # Only ``Exception``: Cancelled and KeyboardInterrupt must keep unwinding.
        await session.write(format_reply(session.commands.internal_failure("console line")))
    return True


async def _press_numbered(session: ConsoleSession, number: int) -> None:
    buttons = session.last_reply.buttons if session.last_reply else ()
    if not 1 <= number <= len(buttons):
        raise BadRequest(f"there is no button {number} on the last reply")
    button = buttons[number - 1]
    if button.disabled:
        raise BadRequest(f"button {number} ({button.label}) is disabled")
    press = ButtonPress(
        custom_id=button.custom_id,
        interaction_id=session.ids.next(),
        user_id=session.user_id,
        guild_id=session.guild_id,
        can_manage_guild=session.admin,
    )
    await _show(session, await session.commands.press(press))


async def _show(session: ConsoleSession, reply: Reply) -> None:
    # As on Discord, an ephemeral reply is a separate message: the buttons of the message
    # before it stay pressable.
    if not reply.ephemeral:
        session.last_reply = reply
    await session.write(format_reply(reply))


def parse_options(command: Command | None, text: str) -> dict[str, Any]:
    """Parse ``name:value`` words (quotes as in a shell) into typed option values."""
    try:
        words = shlex.split(text)
    except ValueError as err:
        raise BadRequest(f"cannot read the options: {err}") from None
    options: dict[str, Any] = {}
    for word in words:
        name, colon, value = word.partition(":")
        if not colon or not name:
            raise BadRequest(f"expected name:value, got {word!r}")
        if name in options:
            raise BadRequest(f"option {name!r} is given twice")
        options[name] = _from_text(option_kind(command, name), value)
    return options


def _from_text(kind: OptionKind | None, text: str) -> Any:
    """Type a typed-in value by its option kind; text that does not fit stays text, and
    the dispatcher refuses it naming the option."""
    if kind is OptionKind.INTEGER:
        number = number_from_text(text)
        return text if number is None else number
    if kind is OptionKind.USER:
        mention = _MENTION.fullmatch(text)
        try:
            return UserRef(snowflake(mention.group(1) if mention else text, "user"))
        except InvalidInput:
            return text
    if kind in (OptionKind.CHANNEL, OptionKind.ROLE):
        mention = _CHANNEL_OR_ROLE.fullmatch(text)
        return int(mention.group(1) or mention.group(2)) if mention else text
    if kind is OptionKind.BOOLEAN and text.lower() in _TRUE_WORDS | _FALSE_WORDS:
        return text.lower() in _TRUE_WORDS
    return text


def format_reply(reply: Reply) -> str:
    """A reply as readable text: title, description, fields, footer, numbered buttons."""
    lines = []
    if reply.error_code is not None:
        lines.append(f"error ({reply.error_code}): {reply.description}")
    else:
        lines.append(f"== {reply.title} ==")
        if reply.description:
            lines.append(reply.description)
        lines.extend(f"  {field.name}: {field.value}" for field in reply.fields)
        if reply.footer:
            lines.append(f"  ({reply.footer})")
    if reply.buttons:
        lines.append(
            "  ".join(
                f"[{number}] {button.label}" + (" (disabled)" if button.disabled else "")
                for number, button in enumerate(reply.buttons, start=1)
            )
        )
    if reply.ephemeral and reply.error_code is None:
        lines.append("  (only you can see this)")
    return "\n".join(lines) + "\n"


def prompt(session: ConsoleSession) -> str:
    admin = " admin" if session.admin else ""
    return f"[user {session.user_id} guild {session.guild_id}{admin}]> "


_CONSOLE_COMMANDS = frozenset({"help", "as", "guild", "admin"})


def _console_command(session: ConsoleSession, name: str, argument: str) -> str:
    if name == "help":
        return help_text(session.commands)
    if name == "admin":
        if argument not in ("on", "off"):
            raise BadRequest("usage: /admin on|off")
        session.admin = argument == "on"
        return f"Manage Server permission is {argument}.\n"
    if not argument:
        raise BadRequest(f"usage: /{name} <id>")
    if name == "as":
        session.user_id = snowflake(argument, "user")
        return f"Acting as user {session.user_id}.\n"
    session.guild_id = snowflake(argument, "guild")
    return f"In guild {session.guild_id}.\n"


def help_text(commands: CommandSet) -> str:
    """Every command with its options, then the console's own commands."""
    lines = ["Commands:"]
    for command in commands.commands:
        words = [f"/{command.name}", *(_describe_option(option) for option in command.options)]
        admin = " (needs Manage Server)" if command.admin_only else ""
        admin += " (needs Ban Members)" if command.ban_members_only else ""
        lines.append(f"  {' '.join(words)}  - {command.description}{admin}")
        for option in command.options:
            lines.append(f"      {option.name}: {option.description}{_bounds(option)}")
    lines += [
        "Console:",
        "  /as <user id>  - act as another user",
        "  /guild <guild id>  - switch guild",
        "  /admin on|off  - grant or drop the Manage Server and Ban Members permissions",
        "  <number>  - press that button of the last reply",
        "  /help, /quit",
    ]
    return "\n".join(lines) + "\n"


def _describe_option(option: Option) -> str:
    word = f"{option.name}:<{option.kind.value}>"
    return word if option.required else f"[{word}]"


def _bounds(option: Option) -> str:
    parts = []
    if option.min_value is not None:
        parts.append(f"at least {option.min_value}")
    if option.max_value is not None:
        parts.append(f"at most {option.max_value}")
    if option.max_length is not None:
        parts.append(f"up to {option.max_length} characters")
    if option.choices:
        parts.append(f"one of {', '.join(option.choices)}")
    return f" ({'; '.join(parts)})" if parts else ""
