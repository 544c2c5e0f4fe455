"""The fake Discord's moderation and messaging routes: bans, role removal, channel messages
and DMs, as the scheduler uses them.

It enforces what Discord does:

- a ban is idempotent (banning a banned user again answers 204); ``delete_message_seconds``
  must lie in 0..604800 (else 400, code 50035); lifting a ban that does not exist answers
  404 Unknown Ban (10026); every lifted ban, by the bot or by hand (``lift_ban``), is
  dispatched as ``GUILD_BAN_REMOVE`` on the guild's gateway session when there is one;
- removing a role is idempotent; a member who left (``remove_member``) answers 404
  Unknown Member (10007) to role changes;
- a message to a deleted channel (``delete_channel``) answers 404 Unknown Channel
  (10003); a DM to a user who does not accept them (``close_dms``) answers 403 (50007);
- a message with ``enforce_nonce`` and a nonce already used in that channel within
  ``nonce_seconds`` returns the original message and posts nothing;
- a guild where the bot lost a permission (``forbid``) answers 403 Missing Permissions
  (50013) on these routes, and ``fail_next`` answers any status and code to the next
  requests of a route (429s come from ``rate_limit``, which runs before any route).

Every request is recorded by the REST part, with its headers (``X-Audit-Log-Reason``),
so tests can check that each action reached Discord exactly once.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fake_discord.guild import GuildPart
from tests.fake_discord.objects import json_response, user_object
from tests.fake_discord.state import FakeDiscordState, Route

# Discord's JSON error codes these routes answer with.
UNKNOWN_CHANNEL = 10003
UNKNOWN_MEMBER = 10007
UNKNOWN_BAN = 10026
CANNOT_DM_USER = 50007
MISSING_PERMISSIONS = 50013
INVALID_FORM_BODY = 50035
# Discord keeps a nonce for "a few minutes"; the fake keeps it this long.
NONCE_SECONDS = 5 * 60.0
_delete_message_seconds_max = 7 * 86_400


@dataclass(frozen=True)
class PostedMessage:
    """A message the fake posted: where, what, and whom it may mention."""

    message_id: int
    channel_id: int
    content: str
    nonce: str | None
    mention_user_ids: tuple[int, ...]


@dataclass
class _Failure:
    pattern: re.Pattern[str]
    method: str | None
    status: int
    code: int
    count: int


class GuildRestPart(FakeDiscordState):
    """The records of bans, roles taken off and messages posted, and their routes."""

    nonce_seconds: float = NONCE_SECONDS

    def __post_init__(self) -> None:
        super().__post_init__()
        self._bans: dict[tuple[int, int], int] = {}
        self._role_removals: list[tuple[int, int, int]] = []
        self._posted: list[PostedMessage] = []
        self._nonces: dict[tuple[int, str], tuple[float, PostedMessage]] = {}
        self._dm_channels: dict[int, int] = {}
        self._absent: set[tuple[int, int]] = set()
        self._deleted_channels: set[int] = set()
        self._closed_dms: set[int] = set()
        self._forbidden_guilds: set[int] = set()
        self._failures: list[_Failure] = []

    # Records (copies, safe to read from the test's thread).

    @property
    def bans(self) -> dict[tuple[int, int], int]:
        """(guild id, user id) of every ban in place -> its delete_message_seconds."""
        with self._lock:
            return dict(self._bans)

    @property
    def role_removals(self) -> list[tuple[int, int, int]]:
        with self._lock:
            return list(self._role_removals)

    @property
    def posted_messages(self) -> list[PostedMessage]:
        with self._lock:
            return list(self._posted)

    def dm_channel_of(self, user_id: int) -> int | None:
        with self._lock:
            return self._dm_channels.get(user_id)

    # Steering.

    def ban_by_hand(self, guild_id: int, user_id: int) -> None:
        """A moderator bans someone in Discord's own interface."""
        with self._lock:
            self._bans[(guild_id, user_id)] = 0

    def lift_ban(self, guild_id: int, user_id: int) -> None:
        """A moderator lifts a ban by hand; the gateway tells the bot."""
        assert self._loop is not None
        with self._lock:
            lifted = self._bans.pop((guild_id, user_id), None) is not None
        assert lifted, f"user {user_id} is not banned in guild {guild_id}"
        future = asyncio.run_coroutine_threadsafe(self._ban_removed(guild_id, user_id), self._loop)
        future.result(10)

    def remove_member(self, guild_id: int, user_id: int) -> None:
        with self._lock:
            self._absent.add((guild_id, user_id))

    def delete_channel(self, channel_id: int) -> None:
        with self._lock:
            self._deleted_channels.add(channel_id)

    def close_dms(self, user_id: int) -> None:
        with self._lock:
            self._closed_dms.add(user_id)

    def forbid(self, guild_id: int) -> None:
        """The bot loses its permissions in ``guild_id`` until ``allow``."""
        with self._lock:
            self._forbidden_guilds.add(guild_id)

    def allow(self, guild_id: int) -> None:
        with self._lock:
            self._forbidden_guilds.discard(guild_id)

    def fail_next(
        self,
        path_pattern: str,
        *,
        status: int,
        code: int = 0,
        method: str | None = None,
        count: int = 1,
    ) -> None:
        """Answer the next ``count`` requests whose path fully matches ``path_pattern``
        (and ``method``, if given) with ``status`` and Discord ``code``."""
        with self._lock:
            self._failures.append(_Failure(re.compile(path_pattern), method, status, code, count))

    # Routes.

    def _refused(self, method: str, path: str, guild: int | None) -> web.Response | None:
        with self._lock:
            for failure in self._failures:
                matches = failure.count and failure.pattern.fullmatch(path)
                if matches and failure.method in (None, method):
                    failure.count -= 1
                    return _error(failure.status, failure.code, "injected failure")
            forbidden = guild is not None and guild in self._forbidden_guilds
        if forbidden:
            return _error(403, MISSING_PERMISSIONS, "Missing Permissions")
        return None

    def _ban(self, body: Any, guild: str, user: str) -> web.Response:
        path = f"/guilds/{guild}/bans/{user}"
        if (refused := self._refused("PUT", path, int(guild))) is not None:
            return refused
        seconds = (body or {}).get("delete_message_seconds", 0)
        if not isinstance(seconds, int) or not 0 <= seconds <= _delete_message_seconds_max:
            return _error(400, INVALID_FORM_BODY, "Invalid Form Body")
        with self._lock:
            self._bans[(int(guild), int(user))] = seconds
        return web.Response(status=204)

    def _unban(self, body: Any, guild: str, user: str) -> web.Response:
        path = f"/guilds/{guild}/bans/{user}"
        if (refused := self._refused("DELETE", path, int(guild))) is not None:
            return refused
        with self._lock:
            lifted = self._bans.pop((int(guild), int(user)), None) is not None
        if not lifted:
            return _error(404, UNKNOWN_BAN, "Unknown Ban")
        assert self._loop is not None
        # Discord dispatches the event for the bot's own unbans too.
        self._loop.create_task(self._ban_removed(int(guild), int(user)))
        return web.Response(status=204)

    def _add_role(self, body: Any, guild: str, user: str, role: str) -> web.Response:
        """Refusals first (injected, forbidden, member gone), then the guild part's grant,
        which also refuses a role above the bot's."""
        path = f"/guilds/{guild}/members/{user}/roles/{role}"
        if (refused := self._refused("PUT", path, int(guild))) is not None:
            return refused
        with self._lock:
            absent = (int(guild), int(user)) in self._absent
        if absent:
            return _error(404, UNKNOWN_MEMBER, "Unknown Member")
        return GuildPart._add_role(self, body, guild, user, role)  # type: ignore[arg-type]

    def _remove_role(self, body: Any, guild: str, user: str, role: str) -> web.Response:
        path = f"/guilds/{guild}/members/{user}/roles/{role}"
        if (refused := self._refused("DELETE", path, int(guild))) is not None:
            return refused
        with self._lock:
            if (int(guild), int(user)) in self._absent:
                return _error(404, UNKNOWN_MEMBER, "Unknown Member")
            self._role_removals.append((int(guild), int(user), int(role)))
        return web.Response(status=204)

    def _open_dm(self, body: Any) -> web.Response:
        if (refused := self._refused("POST", "/users/@me/channels", None)) is not None:
            return refused
        user = int((body or {})["recipient_id"])
        with self._lock:
            channel = self._dm_channels.get(user)
        if channel is None:
            channel = self._snowflake()
            with self._lock:
                channel = self._dm_channels.setdefault(user, channel)
        return json_response({"id": str(channel), "type": 1, "recipients": [user_object(user)]})

    def _post_message(self, body: Any, channel: str) -> web.Response:
        path = f"/channels/{channel}/messages"
        if (refused := self._refused("POST", path, None)) is not None:
            return refused
        channel_id, body = int(channel), body or {}
        with self._lock:
            if channel_id in self._deleted_channels:
                return _error(404, UNKNOWN_CHANNEL, "Unknown Channel")
            recipient = next((u for u, c in self._dm_channels.items() if c == channel_id), None)
            if recipient is not None and recipient in self._closed_dms:
                return _error(403, CANNOT_DM_USER, "Cannot send messages to this user")
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            with self._lock:
                kept = self._nonces.get((channel_id, str(nonce)))
            if kept is not None and time.monotonic() - kept[0] < self.nonce_seconds:
                return json_response(_message_object(kept[1]))
        mentions = body.get("allowed_mentions", {}).get("users", [])
        posted = PostedMessage(
            self._snowflake(),
            channel_id,
            str(body.get("content", "")),
            None if nonce is None else str(nonce),
            tuple(int(u) for u in mentions),
        )
        with self._lock:
            self._posted.append(posted)
            if nonce is not None:
                self._nonces[(channel_id, str(nonce))] = (time.monotonic(), posted)
        return json_response(_message_object(posted))

    async def _ban_removed(self, guild_id: int, user_id: int) -> None:
        """``GUILD_BAN_REMOVE`` on the guild's session, when the client has one."""
        shard = (guild_id >> 22) % self.shards
        for session in self._sessions:
            if session.shard_id in (shard, None) and not session.ws.closed:
                data = {"guild_id": str(guild_id), "user": user_object(user_id)}
                await self._dispatch(session, "GUILD_BAN_REMOVE", data)  # type: ignore[attr-defined]
                return


def _error(status: int, code: int, message: str) -> web.Response:
    return json_response({"message": message, "code": code}, status=status)


def _message_object(posted: PostedMessage) -> dict[str, Any]:
    return {
        "id": str(posted.message_id),
        "channel_id": str(posted.channel_id),
        "content": posted.content,
        "nonce": posted.nonce,
        "mentions": [],
        "attachments": [],
        "embeds": [],
        "type": 0,
    }


ROUTES: tuple[Route, ...] = (
    ("PUT", re.compile(r"/guilds/([0-9]+)/bans/([0-9]+)"), GuildRestPart._ban),
    ("DELETE", re.compile(r"/guilds/([0-9]+)/bans/([0-9]+)"), GuildRestPart._unban),
    # Matched before the guild part's grant route, which this one wraps.
    (
        "PUT",
        re.compile(r"/guilds/([0-9]+)/members/([0-9]+)/roles/([0-9]+)"),
        GuildRestPart._add_role,
    ),
    (
        "DELETE",
        re.compile(r"/guilds/([0-9]+)/members/([0-9]+)/roles/([0-9]+)"),
        GuildRestPart._remove_role,
    ),
    ("POST", re.compile(r"/users/@me/channels"), GuildRestPart._open_dm),
    ("POST", re.compile(r"/channels/([0-9]+)/messages"), GuildRestPart._post_message),
)
