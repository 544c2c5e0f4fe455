"""The console transport: every command without Discord, for people and for scripts.

Human mode reads lines typed as in Discord (``/pay user:43 amount:50 reason:"a b"``) and
prints replies as text, with buttons as numbered choices. JSON mode (``--json``) reads one
JSON request per line and writes one JSON reply per line; ``bot/CONSOLE.md`` documents
that format, which scripts rely on, so it only ever grows compatibly.

Both modes run lines one at a time, in order, through the same ``CommandSet`` the Discord
transport uses, so a console session exercises the exact checks and handlers of the bot.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from actors.errors import InvalidInput
from bot.dispatch import CommandSet, error_reply, plain_values
from bot.inputs import json_deeper_than, json_integer, number_from_text, snowflake
from bot.model import ButtonPress, Command, Invocation, Option, OptionKind, Reply, UserRef
from limits import (
    command_name_chars_max,
    console_line_bytes_max,
    console_receive_bytes_max,
    custom_id_chars_max,
    json_depth_max,
)

logger = logging.getLogger(__name__)


# Discord's epoch; console interaction ids are laid out like Discord snowflakes
# (milliseconds since it, shifted left 22 bits) so they are unique across runs too: an
# interaction id is an idempotency key in the store, and a restarted console must never
# reuse one.
_discord_epoch_ms = 1_420_070_400_000
_snowflake_sequence_bits = 22

_MENTION = re.compile(r"<@!?([0-9]{1,20})>")
_BUTTON_NUMBER = re.compile(r"[0-9]{1,3}")
_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0"})
_JSON_REQUEST_KEYS = frozenset({"user", "guild", "channel", "admin", "id", "command", "options"})
_JSON_BUTTON_KEYS = frozenset({"user", "guild", "channel", "admin", "id", "button"})


class BadRequest(Exception):
    """A console line that could not be understood; the message says what was wrong."""


class InteractionIds:
    """Fresh interaction ids: increasing, shaped like Discord snowflakes.

    Every session of one process draws from the same sequence: two sessions opened in
    the same millisecond must not issue the same id, which the store would take as one
    request sent twice (and refuse the second as ``id_reused``)."""

    _last = 0

    def next(self) -> int:
        now = (time.time_ns() // 1_000_000 - _discord_epoch_ms) << _snowflake_sequence_bits
        InteractionIds._last = max(InteractionIds._last + 1, now)
        return InteractionIds._last


@dataclass
class _Session:
    commands: CommandSet
    writer: trio.abc.SendStream
    user_id: int
    guild_id: int
    admin: bool
    ids: InteractionIds
    # The buttons of the last non-ephemeral reply; typing a number presses one of them.
    last_reply: Reply | None = None

    async def write(self, text: str) -> None:
        await self.writer.send_all(text.encode())


async def run_console(
    commands: CommandSet,
    reader: trio.abc.ReceiveStream,
    writer: trio.abc.SendStream,
    *,
    json_mode: bool,
    user_id: int,
    guild_id: int,
    admin: bool,
    stop: trio.Event | None = None,
) -> None:
    """Serve ``commands`` on a line stream until end of input, ``/quit`` or ``stop``.

    ``stop`` (a signal) ends the session between lines: the line being served finishes
    and its reply is written, and no further line is read.
    """
    session = _Session(commands, writer, user_id, guild_id, admin, InteractionIds())
    if not json_mode:
        await session.write("Croupier console. Type /help for the commands, /quit to leave.\n")
        await session.write(_prompt(session))
    async for line in _lines(reader, stop):
        if json_mode:
            if isinstance(line, str) and not line.strip():
                continue
            await session.write(_dump(await _serve_json(session, line)) + "\n")
            continue
        if not await _serve_human(session, line):
            return
        await session.write(_prompt(session))
    if not json_mode and stop is not None and stop.is_set():
        # Interrupted at the prompt: end its line so the shell's prompt starts clean.
        await session.write("\n")


async def run_console_stdio(
    commands: CommandSet,
    *,
    json_mode: bool,
    user_id: int,
    guild_id: int,
    admin: bool,
    stop: trio.Event | None = None,
) -> None:
    """``run_console`` on this process's standard input and output."""
    async with _stdio() as (reader, writer):
        await run_console(
            commands,
            reader,
            writer,
            json_mode=json_mode,
            user_id=user_id,
            guild_id=guild_id,
            admin=admin,
            stop=stop,
        )


@asynccontextmanager
async def _stdio() -> AsyncIterator[tuple[trio.lowlevel.FdStream, trio.lowlevel.FdStream]]:
    # FdStream makes the file non-blocking, and that flag belongs to the open file that
    # a terminal shares with the shell, so the original modes are put back on the way out.
    blocking = os.get_blocking(0), os.get_blocking(1)
    reader = trio.lowlevel.FdStream(os.dup(0))
    writer = trio.lowlevel.FdStream(os.dup(1))
    try:
        yield reader, writer
    finally:
        await reader.aclose()
        await writer.aclose()
        os.set_blocking(0, blocking[0])
        os.set_blocking(1, blocking[1])


async def _lines(
    reader: trio.abc.ReceiveStream, stop: trio.Event | None = None
) -> AsyncIterator[str | BadRequest]:
    """Yield each input line without its end, or a ``BadRequest`` for a line that is too
    long or not UTF-8. A last line without a newline still counts. Once ``stop`` is set
    no further line is yielded, even one already read."""
    buffer = bytearray()
    overlong = False
    while True:
        chunk = await _receive(reader, stop)
        if not chunk:
            break
        buffer += chunk
        while (end := buffer.find(b"\n")) >= 0:
            if stop is not None and stop.is_set():
                return
            raw = bytes(buffer[:end])
            del buffer[: end + 1]
            if overlong:
                overlong = False
                yield BadRequest(f"line longer than {console_line_bytes_max} bytes")
            else:
                yield _decode(raw)
        if len(buffer) > console_line_bytes_max:
            overlong = True
            buffer.clear()
    if stop is not None and stop.is_set():
        return
    if overlong:
        yield BadRequest(f"line longer than {console_line_bytes_max} bytes")
    elif buffer:
        yield _decode(bytes(buffer))


async def _receive(reader: trio.abc.ReceiveStream, stop: trio.Event | None) -> bytes | bytearray:
    """The next chunk of input, or nothing (as at end of input) once ``stop`` is set."""
    if stop is None:
        return await reader.receive_some(console_receive_bytes_max)
    received: bytes | bytearray = b""
    async with trio.open_nursery() as race:

        async def read() -> None:
            nonlocal received
            received = await reader.receive_some(console_receive_bytes_max)
            race.cancel_scope.cancel()

        race.start_soon(read)
        await stop.wait()
        race.cancel_scope.cancel()
    return received


def _decode(raw: bytes) -> str | BadRequest:
    if len(raw) > console_line_bytes_max:
        return BadRequest(f"line longer than {console_line_bytes_max} bytes")
    try:
        return raw.decode().rstrip("\r")
    except UnicodeDecodeError as err:
        return BadRequest(f"line is not UTF-8: {err.reason} at byte {err.start}")


# JSON mode.


async def _serve_json(session: _Session, line: str | BadRequest) -> dict[str, Any]:
    """Exactly one reply for one line, whatever the line holds."""
    try:
        if isinstance(line, BadRequest):
            raise line
        request = _parse_json(line)
        if "button" in request:
            button = _json_button(session, request)
            return reply_json(await session.commands.press(button), button.interaction_id)
        inv = _json_invocation(session, request)
        return reply_json(await session.commands.invoke(inv), inv.interaction_id)
    except BadRequest as err:
        return {"ok": False, "id": None, "error": {"code": "bad_request", "message": str(err)}}
    except InvalidInput as err:
        # A request field (user, guild, channel, id) refused at the boundary.
        return {"ok": False, "id": None, "error": {"code": err.code, "message": err.message}}
    except Exception:
        # Only ``Exception``: Cancelled and KeyboardInterrupt must keep unwinding.
        reply = session.commands.internal_failure("console JSON line")
        return reply_json(reply, 0) | {"id": None}


def _parse_json(line: str) -> dict[str, Any]:
    _check_depth(line)
    try:
        request = json.loads(line, parse_int=json_integer)
    except json.JSONDecodeError as err:
        raise BadRequest(f"not valid JSON: {err.msg} at column {err.colno}") from None
    if not isinstance(request, dict):
        raise BadRequest("a request must be a JSON object")
    if ("command" in request) == ("button" in request):
        raise BadRequest('a request needs exactly one of "command" or "button"')
    allowed = _JSON_BUTTON_KEYS if "button" in request else _JSON_REQUEST_KEYS
    unknown = sorted(set(request) - allowed)
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
    return request


def _check_depth(line: str) -> None:
    if json_deeper_than(line, json_depth_max):
        raise BadRequest(f"JSON nested deeper than {json_depth_max} levels")


def _json_id(request: Mapping[str, Any], key: str, default: int) -> int:
    return snowflake(request[key], key) if key in request else default


def _json_common(session: _Session, request: Mapping[str, Any]) -> dict[str, Any]:
    admin = request.get("admin", session.admin)
    if not isinstance(admin, bool):
        raise BadRequest('"admin" must be true or false')
    # 0 is how a request says it comes from outside any server (a direct message).
    guild = 0 if request.get("guild") == 0 else _json_id(request, "guild", session.guild_id)
    return {
        "interaction_id": _json_id(request, "id", 0) or session.ids.next(),
        "user_id": _json_id(request, "user", session.user_id),
        "guild_id": guild,
        "channel_id": _json_id(request, "channel", 0),
        "can_manage_guild": admin,
    }


def _json_button(session: _Session, request: Mapping[str, Any]) -> ButtonPress:
    custom_id = request["button"]
    if not isinstance(custom_id, str) or not 0 < len(custom_id) <= custom_id_chars_max:
        raise BadRequest(f'"button" must be a custom id of 1 to {custom_id_chars_max} characters')
    return ButtonPress(custom_id=custom_id, **_json_common(session, request))


def _json_invocation(session: _Session, request: Mapping[str, Any]) -> Invocation:
    name = request["command"]
    if not isinstance(name, str) or not 0 < len(name) <= command_name_chars_max + 1:
        raise BadRequest('"command" must be a command name')
    raw = request.get("options", {})
    if not isinstance(raw, dict):
        raise BadRequest('"options" must be a JSON object')
    command = session.commands.command(name.removeprefix("/"))
    options = {key: _from_json(command, key, value) for key, value in raw.items()}
    return Invocation(
        command=name.removeprefix("/"), options=options, **_json_common(session, request)
    )


def _from_json(command: Command | None, name: str, value: Any) -> Any:
    """Type a JSON option value by its spec. A value that does not fit is passed on as it
    is, so the dispatcher refuses it with the same message as on every transport."""
    kind = _option_kind(command, name)
    if kind is OptionKind.USER:
        user_id, bot = value, False
        if isinstance(value, dict) and set(value) <= {"id", "bot"}:
            user_id, bot = value.get("id"), value.get("bot", False)
        try:
            if isinstance(bot, bool):
                return UserRef(snowflake(user_id, name), bot=bot)
        except InvalidInput:
            pass
    return value


def reply_json(reply: Reply, interaction_id: int) -> dict[str, Any]:
    """The JSON form of a reply, as the console writes it (see bot/CONSOLE.md)."""
    error = None
    if reply.error_code is not None:
        error = {"code": reply.error_code, "message": reply.description}
    return {
        "ok": error is None,
        "id": interaction_id,
        "title": reply.title,
        "description": reply.description,
        "fields": [{"name": f.name, "value": f.value, "inline": f.inline} for f in reply.fields],
        "buttons": [
            {
                "custom_id": b.custom_id,
                "label": b.label,
                "style": b.style.value,
                "disabled": b.disabled,
            }
            for b in reply.buttons
        ],
        "ephemeral": reply.ephemeral,
        "result": plain_values(reply.result),
        "error": error,
    }


# Characters that some line readers (Python's str.splitlines, JavaScript) take as a line
# end; JSON allows them raw in strings, so a reply escapes them to stay one line for all.
_LINE_BREAKS = str.maketrans({"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _dump(value: Mapping[str, Any]) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text.translate(_LINE_BREAKS)


# Human mode.


async def _serve_human(session: _Session, line: str | BadRequest) -> bool:
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


async def _press_numbered(session: _Session, number: int) -> None:
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


async def _show(session: _Session, reply: Reply) -> None:
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
        options[name] = _from_text(_option_kind(command, name), value)
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
    if kind is OptionKind.BOOLEAN and text.lower() in _TRUE_WORDS | _FALSE_WORDS:
        return text.lower() in _TRUE_WORDS
    return text


def _option_kind(command: Command | None, name: str) -> OptionKind | None:
    if command is None:
        return None
    return next((option.kind for option in command.options if option.name == name), None)


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


def _prompt(session: _Session) -> str:
    admin = " admin" if session.admin else ""
    return f"[user {session.user_id} guild {session.guild_id}{admin}]> "


_CONSOLE_COMMANDS = frozenset({"help", "as", "guild", "admin"})


def _console_command(session: _Session, name: str, argument: str) -> str:
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
        lines.append(f"  {' '.join(words)}  - {command.description}{admin}")
        for option in command.options:
            lines.append(f"      {option.name}: {option.description}{_bounds(option)}")
    lines += [
        "Console:",
        "  /as <user id>  - act as another user",
        "  /guild <guild id>  - switch guild",
        "  /admin on|off  - grant or drop the Manage Server permission",
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
