"""A fake Discord (REST + gateway on 127.0.0.1) for end-to-end tests of the real client."""

from tests.fake_discord.objects import (
    APP_ID,
    BOT_ROLE_ID,
    BOT_ROLE_POSITION,
    BOT_USER_ID,
    CHANNEL_ID,
    GUILD_ID,
    REFUSED_TOKEN,
)
from tests.fake_discord.server import FakeDiscord
from tests.fake_discord.state import Callback, Identify, RecordedRequest

__all__ = [
    "APP_ID",
    "BOT_ROLE_ID",
    "BOT_ROLE_POSITION",
    "BOT_USER_ID",
    "CHANNEL_ID",
    "GUILD_ID",
    "REFUSED_TOKEN",
    "Callback",
    "FakeDiscord",
    "Identify",
    "RecordedRequest",
]
