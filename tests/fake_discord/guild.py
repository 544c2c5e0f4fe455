"""The fake Discord's guild routes: what the bot does to a guild's members.

Discord refuses what a bot's role does not allow: a role at or above the bot's highest
role cannot be granted (403, code 50013). Each grant the fake lets through is recorded
for the tests to read.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from tests.fake_discord.objects import json_response
from tests.fake_discord.state import FakeDiscordState, Route

# Discord's JSON error code for an action the bot's permissions or role do not allow.
MISSING_PERMISSIONS = 50013


class GuildPart(FakeDiscordState):
    """The records of what was done to members, and the routes doing it."""

    @property
    def role_grants(self) -> list[tuple[int, int, int]]:
        """(guild id, user id, role id) of every role added to a member."""
        with self._lock:
            return list(self._role_grants)

    def _add_role(self, body: Any, guild: str, user: str, role: str) -> web.Response:
        if self.roles.get(int(role), -1) >= self.bot_role_position:
            # Discord refuses to grant a role at or above the bot's own highest role.
            return json_response(
                {"message": "Missing Permissions", "code": MISSING_PERMISSIONS}, status=403
            )
        with self._lock:
            self._role_grants.append((int(guild), int(user), int(role)))
        return web.Response(status=204)


ROUTES: tuple[Route, ...] = (
    ("PUT", re.compile(r"/guilds/([0-9]+)/members/([0-9]+)/roles/([0-9]+)"), GuildPart._add_role),
)
