"""The console's JSON mode (``--json``): one JSON request per line, one JSON reply per line.

``bot/CONSOLE.md`` documents the format, which scripts rely on, so it only ever grows
compatibly: a request names a command and its options, or a button, with who sends it;
the reply carries every field of the reply model, the figures in ``result``, and a
typed error for a line that could not be served, whatever the line held.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from actors.errors import InvalidInput
from bot.console_session import BadRequest, ConsoleSession, option_kind
from bot.dispatch import plain_values
from bot.inputs import json_deeper_than, json_integer, snowflake
from bot.model import ButtonPress, Command, Invocation, OptionKind, Reply, UserRef
from limits import (
    command_name_chars_max,
    custom_id_chars_max,
    json_depth_max,
)

_JSON_REQUEST_KEYS = frozenset({"user", "guild", "channel", "admin", "id", "command", "options"})
_JSON_BUTTON_KEYS = frozenset({"user", "guild", "channel", "admin", "id", "button"})


async def serve_json(session: ConsoleSession, line: str | BadRequest) -> dict[str, Any]:
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


def _json_common(session: ConsoleSession, request: Mapping[str, Any]) -> dict[str, Any]:
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


def _json_button(session: ConsoleSession, request: Mapping[str, Any]) -> ButtonPress:
    custom_id = request["button"]
    if not isinstance(custom_id, str) or not 0 < len(custom_id) <= custom_id_chars_max:
        raise BadRequest(f'"button" must be a custom id of 1 to {custom_id_chars_max} characters')
    return ButtonPress(custom_id=custom_id, **_json_common(session, request))


def _json_invocation(session: ConsoleSession, request: Mapping[str, Any]) -> Invocation:
    name = request["command"]
    if not isinstance(name, str) or not 0 < len(name) <= command_name_chars_max + 1:
        raise BadRequest('"command" must be a command name')
    raw = request.get("options", {})
    if not isinstance(raw, dict):
        raise BadRequest('"options" must be a JSON object')
    command = session.commands.command(name.removeprefix("/"))
    options = {key: _from_json(command, key, value) for key, value in raw.items()}
    common = _json_common(session, request)
    # The console's admin holds every permission a command can ask for.
    return Invocation(
        command=name.removeprefix("/"),
        options=options,
        can_ban_members=common["can_manage_guild"],
        **common,
    )


def _from_json(command: Command | None, name: str, value: Any) -> Any:
    """Type a JSON option value by its spec. A value that does not fit is passed on as it
    is, so the dispatcher refuses it with the same message as on every transport."""
    kind = option_kind(command, name)
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


def dump_json(value: Mapping[str, Any]) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text.translate(_LINE_BREAKS)
