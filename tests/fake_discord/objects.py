"""What Discord's JSON looks like, for the fake: its ids, users, members, roles and guilds.

The gateway, REST and interaction parts of the fake all build the same Discord objects;
they live here, once, as plain functions of their ids, so that every part answers with
the same shapes and a field interactions.py starts to need is added in one place.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

APP_ID = 900_000_000_000_000_001
BOT_USER_ID = 900_000_000_000_000_002
GUILD_ID = 900_000_000_000_000_003
# A token the fake refuses, as Discord does a revoked one.
REFUSED_TOKEN = "refused-token"
CHANNEL_ID = 900_000_000_000_000_004
# The role Discord gives the bot when it joins, and where it sits in the role list.
BOT_ROLE_ID = 900_000_000_000_000_005
BOT_ROLE_POSITION = 10

DISCORD_EPOCH_MS = 1_420_070_400_000


def json_response(value: Any, status: int = 200) -> web.Response:
    # interactions.py decodes a body as JSON only when the content type is exactly
    # "application/json"; aiohttp's json_response would add "; charset=utf-8".
    response = web.Response(body=json.dumps(value).encode(), status=status)
    response.headers["Content-Type"] = "application/json"
    return response


def interaction_token(interaction_id: int) -> str:
    return f"token-{interaction_id}"


def edited_message(message: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    edited = dict(message)
    for key in ("content", "embeds", "components", "flags"):
        if key in data and data[key] is not None:
            edited[key] = data[key]
    edited["edited_timestamp"] = datetime.now(UTC).isoformat()
    return edited


def bot_message(message_id: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """A message the bot posted through an interaction's webhook, with ``data``'s content,
    embeds, components and flags."""
    return {
        "id": message_id,
        "channel_id": str(CHANNEL_ID),
        "guild_id": str(GUILD_ID),
        "author": user_object(BOT_USER_ID, bot=True),
        "content": data.get("content") or "",
        "timestamp": datetime.now(UTC).isoformat(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": data.get("embeds") or [],
        "components": data.get("components") or [],
        "pinned": False,
        "type": 20,
        "flags": int(data.get("flags") or 0),
        "application_id": str(APP_ID),
        "webhook_id": str(APP_ID),
    }


def user_object(user_id: int, *, bot: bool = False) -> dict[str, Any]:
    return {
        "id": str(user_id),
        "username": f"user{user_id}",
        "discriminator": "0",
        "global_name": None,
        "avatar": None,
        "bot": bot,
        "public_flags": 0,
    }


def member_fields(permissions: int) -> dict[str, Any]:
    return {
        "roles": [],
        "joined_at": "2024-01-01T00:00:00+00:00",
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "nick": None,
        "avatar": None,
        "permissions": str(permissions),
    }


def role_object(role_id: int, name: str, position: int, *, bot: bool = False) -> dict[str, Any]:
    role: dict[str, Any] = {
        "id": str(role_id),
        "name": name,
        "color": 0,
        "hoist": False,
        "position": position,
        "permissions": str(1 << 28) if bot else "0",
        "managed": bot,
        "mentionable": False,
        "flags": 0,
    }
    if bot:
        role["tags"] = {"bot_id": str(BOT_USER_ID)}
    return role


def guild_create(guild_id: int, roles: Mapping[int, int], bot_role_position: int) -> dict[str, Any]:
    """A GUILD_CREATE: the guild's roles (``@everyone``, the bot's, ``roles``) and the bot's
    own member, so the client knows the bot's highest role."""
    bot_member = {"user": user_object(BOT_USER_ID, bot=True), **member_fields(0)}
    bot_member["roles"] = [str(BOT_ROLE_ID)]
    return {
        "id": str(guild_id),
        "name": "Fake Casino",
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "owner_id": str(BOT_USER_ID + 1),
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "roles": [
            role_object(guild_id, "@everyone", 0),
            role_object(BOT_ROLE_ID, "Croupier", bot_role_position, bot=True),
            *(
                role_object(role_id, f"role{role_id}", position)
                for role_id, position in roles.items()
            ),
        ],
        "emojis": [],
        "features": [],
        "mfa_level": 0,
        "application_id": None,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "vanity_url_code": None,
        "description": None,
        "banner": None,
        "premium_tier": 0,
        "preferred_locale": "en-US",
        "public_updates_channel_id": None,
        "nsfw_level": 0,
        "premium_progress_bar_enabled": False,
        "stickers": [],
        "joined_at": "2024-01-01T00:00:00+00:00",
        "large": False,
        "unavailable": False,
        "member_count": 2,
        "voice_states": [],
        "members": [bot_member],
        "channels": [],
        "threads": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
    }
