"""Discord's JSON, both ways, for the transports that speak it without a library.

In: an interaction payload becomes an ``Invocation`` or a ``ButtonPress`` (options typed
the way the command model types them, ids parsed by ``bot.inputs.snowflake`` as every
transport does). Out: a ``Reply`` becomes a message payload, and a ``Command`` the
definition Discord registers. Everything here is a pure function of its arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actors.errors import InvalidInput
from bot.inputs import snowflake
from bot.model import (
    Button,
    ButtonPress,
    ButtonStyle,
    Command,
    Invocation,
    Option,
    OptionKind,
    Reply,
    UserRef,
)
from limits import (
    button_label_chars_max,
    button_rows_max,
    buttons_per_row_max,
    command_name_chars_max,
    custom_id_chars_max,
    embed_description_chars_max,
    embed_field_name_chars_max,
    embed_field_value_chars_max,
    embed_fields_max,
    embed_footer_chars_max,
    embed_title_chars_max,
)

# Interaction types and callback types, as Discord numbers them.
PING = 1
APPLICATION_COMMAND = 2
MESSAGE_COMPONENT = 3
PONG = 1
CHANNEL_MESSAGE = 4
DEFERRED_CHANNEL_MESSAGE = 5
DEFERRED_UPDATE_MESSAGE = 6
UPDATE_MESSAGE = 7
EPHEMERAL_FLAG = 1 << 6

_MANAGE_GUILD = 1 << 5
_ADMINISTRATOR = 1 << 3
_MANAGE_ROLES = 1 << 28
_BAN_MEMBERS = 1 << 2


_OPTION_TYPES = {
    OptionKind.STRING: 3,
    OptionKind.INTEGER: 4,
    OptionKind.BOOLEAN: 5,
    OptionKind.USER: 6,
    OptionKind.CHANNEL: 7,
    OptionKind.ROLE: 8,
}
_BUTTON_STYLES = {
    ButtonStyle.PRIMARY: 1,
    ButtonStyle.SECONDARY: 2,
    ButtonStyle.SUCCESS: 3,
    ButtonStyle.DANGER: 4,
}
_COMPONENT_ACTION_ROW = 1
_COMPONENT_BUTTON = 2
# Replies never ping anyone: member names in them are mentions for display only, and
# text users stored (an item's name, a reason) must not reach @everyone or a role.
NO_MENTIONS: Mapping[str, Any] = {"parse": []}


# In.


def invocation(payload: Mapping[str, Any], command: Command | None) -> Invocation:
    """The command a type 2 interaction carries; ``command`` is its definition, if known,
    so that options are typed by the definition rather than by what the payload claims."""
    data = _mapping(payload.get("data"), "data")
    name = data.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= command_name_chars_max:
        raise InvalidInput("data.name", "is not a command name")
    user_id, permissions = _author(payload)
    return Invocation(
        command=name,
        interaction_id=snowflake(payload.get("id"), "id"),
        user_id=user_id,
        guild_id=_optional_snowflake(payload.get("guild_id"), "guild_id"),
        channel_id=_optional_snowflake(payload.get("channel_id"), "channel_id"),
        can_manage_guild=bool(permissions & (_MANAGE_GUILD | _ADMINISTRATOR)),
        can_ban_members=bool(permissions & (_BAN_MEMBERS | _ADMINISTRATOR)),
        options=options(command, data),
    )


def button_press(payload: Mapping[str, Any]) -> ButtonPress:
    """The button press a type 3 interaction carries."""
    data = _mapping(payload.get("data"), "data")
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= custom_id_chars_max:
        raise InvalidInput("data.custom_id", "is not a button id")
    user_id, permissions = _author(payload)
    return ButtonPress(
        custom_id=custom_id,
        interaction_id=snowflake(payload.get("id"), "id"),
        user_id=user_id,
        guild_id=_optional_snowflake(payload.get("guild_id"), "guild_id"),
        channel_id=_optional_snowflake(payload.get("channel_id"), "channel_id"),
        can_manage_guild=bool(permissions & (_MANAGE_GUILD | _ADMINISTRATOR)),
    )


def bot_may_manage_roles(payload: Mapping[str, Any]) -> bool | None:
    """Whether the interaction's ``app_permissions`` let the bot change roles (Manage
    Roles or Administrator); None when the payload does not say."""
    permissions = payload.get("app_permissions")
    if not (isinstance(permissions, str) and permissions.isascii() and permissions.isdigit()):
        return None
    return bool(int(permissions) & (_MANAGE_ROLES | _ADMINISTRATOR))


def options(command: Command | None, data: Mapping[str, Any]) -> dict[str, Any]:
    """Option values as the command model types them. A user option is an id, resolved
    (with its ``bot`` flag) from ``data.resolved.users`` when Discord sent it there."""
    kinds = {option.name: option.kind for option in command.options} if command else {}
    resolved = _mapping(data.get("resolved") or {}, "data.resolved")
    users = _mapping(resolved.get("users") or {}, "data.resolved.users")
    values: dict[str, Any] = {}
    raw_options = data.get("options") or []
    if not isinstance(raw_options, list):
        raise InvalidInput("data.options", "is not a list")
    for raw in raw_options:
        option = _mapping(raw, "data.options")
        name = option.get("name")
        if not isinstance(name, str):
            raise InvalidInput("data.options", "an option has no name")
        value = option.get("value")
        if kinds.get(name) is OptionKind.USER:
            user_id = snowflake(value, name)
            user = users.get(str(user_id))
            value = UserRef(user_id, bot=bool(user.get("bot")) if isinstance(user, dict) else False)
        elif kinds.get(name) in (OptionKind.CHANNEL, OptionKind.ROLE):
            value = snowflake(value, name)
        values[name] = value
    return values


def _author(payload: Mapping[str, Any]) -> tuple[int, int]:
    """The user id and guild permissions of whoever sent the interaction: a member in a
    guild, a bare user in a DM (who manages nothing)."""
    member = payload.get("member")
    if member is not None:
        member = _mapping(member, "member")
        user = _mapping(member.get("user"), "member.user")
        permissions = member.get("permissions") or "0"
        if not isinstance(permissions, str) or not permissions.isdigit():
            raise InvalidInput("member.permissions", "is not a permission set")
        return snowflake(user.get("id"), "member.user.id"), int(permissions)
    user = _mapping(payload.get("user"), "user")
    return snowflake(user.get("id"), "user.id"), 0


def _optional_snowflake(value: Any, field: str) -> int:
    return 0 if value is None else snowflake(value, field)


def _mapping(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(field, "is missing or not an object")
    return value


# Out.


def message(reply: Reply) -> dict[str, Any]:
    """The message payload of a reply: one embed, its buttons, and no pings."""
    payload: dict[str, Any] = {
        "embeds": [embed(reply)],
        "components": rows(reply.buttons),
        "allowed_mentions": dict(NO_MENTIONS),
    }
    if reply.ephemeral:
        payload["flags"] = EPHEMERAL_FLAG
    return payload


def embed(reply: Reply) -> dict[str, Any]:
    payload: dict[str, Any] = {"title": _cut(reply.title, embed_title_chars_max)}
    if reply.description:
        payload["description"] = _cut(reply.description, embed_description_chars_max)
    payload["color"] = reply.color
    if reply.fields:
        payload["fields"] = [
            {
                "name": _cut(field.name, embed_field_name_chars_max),
                "value": _cut(field.value, embed_field_value_chars_max),
                "inline": field.inline,
            }
            for field in reply.fields[:embed_fields_max]
        ]
    if reply.footer:
        payload["footer"] = {"text": _cut(reply.footer, embed_footer_chars_max)}
    return payload


def rows(buttons: tuple[Button, ...]) -> list[dict[str, Any]]:
    assert len(buttons) <= buttons_per_row_max * button_rows_max, "Discord shows at most 25 buttons"
    return [
        {
            "type": _COMPONENT_ACTION_ROW,
            "components": [
                {
                    "type": _COMPONENT_BUTTON,
                    "style": _BUTTON_STYLES[button.style],
                    "label": _cut(button.label, button_label_chars_max),
                    "custom_id": button.custom_id,
                    "disabled": button.disabled,
                }
                for button in buttons[start : start + buttons_per_row_max]
            ],
        }
        for start in range(0, len(buttons), buttons_per_row_max)
    ]


def command_definition(command: Command) -> dict[str, Any]:
    """The application command Discord registers for ``command`` (a guild-only slash
    command; admin commands are hidden from members without Manage Server)."""
    definition: dict[str, Any] = {
        "name": command.name,
        "type": 1,
        "description": command.description,
        "options": [_option_definition(option) for option in command.options],
        "contexts": [0],
        "default_member_permissions": _default_permissions(command),
    }
    return definition


def _default_permissions(command: Command) -> str | None:
    """Who sees the command by default; a server's admins can change it in Discord."""
    if command.admin_only:
        return str(_MANAGE_GUILD)
    if command.ban_members_only:
        return str(_BAN_MEMBERS)
    return None


def _option_definition(option: Option) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "type": _OPTION_TYPES[option.kind],
        "name": option.name,
        "description": option.description,
        "required": option.required,
    }
    if option.choices:
        definition["choices"] = [
            {"name": choice, "value": int(choice) if option.kind is OptionKind.INTEGER else choice}
            for choice in option.choices
        ]
    if option.min_value is not None:
        definition["min_value"] = option.min_value
    if option.max_value is not None:
        definition["max_value"] = option.max_value
    if option.max_length is not None:
        definition["max_length"] = option.max_length
    return definition


def _cut(text: str, chars_max: int) -> str:
    return text if len(text) <= chars_max else text[: chars_max - 1] + "…"
