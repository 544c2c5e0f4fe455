"""An in-memory Discord port for unit tests: it records every call, keeps the little state
Discord keeps (bans, roles, messages by nonce) and answers as Discord would, and answers
with scripted results when a test asks it to.

- ``script(method, *results)`` queues results for the next calls of ``method``
  (``"ban"``, ``"unban"``, ``"add_role"``, ``"remove_role"``, ``"send_message"``,
  ``"send_dm"``); a queued result is returned instead of acting, so nothing changes.
- ``forbid(guild_id)`` makes every guild call of that guild answer ``Forbidden`` (50013)
  until ``allow(guild_id)``.
- ``absent_members``, ``unknown_channels`` and ``closed_dms`` hold the ids for which
  Discord answers Unknown Member, Unknown Channel and Cannot DM.

An unban of a member who is not banned answers ``Gone`` (Unknown Ban), as Discord does.
"""

from __future__ import annotations

import itertools
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from actors.discord_port import (
    CANNOT_DM_USER,
    MISSING_PERMISSIONS,
    UNKNOWN_BAN,
    UNKNOWN_CHANNEL,
    UNKNOWN_MEMBER,
    DiscordResult,
    Done,
    Forbidden,
    Gone,
)

METHODS = ("ban", "unban", "add_role", "remove_role", "send_message", "send_dm")


@dataclass(frozen=True)
class PortCall:
    """One call the port received, with its arguments, and what it answered."""

    method: str
    args: dict[str, Any]
    result: DiscordResult


@dataclass(frozen=True)
class PostedMessage:
    message_id: int
    channel_id: int
    content: str
    nonce: str
    mention_user_ids: tuple[int, ...]
    dm_user_id: int = 0


@dataclass
class FakeDiscordPort:
    calls: list[PortCall] = field(default_factory=list)
    bans: dict[tuple[int, int], str] = field(default_factory=dict)
    roles: set[tuple[int, int, int]] = field(default_factory=set)
    messages: list[PostedMessage] = field(default_factory=list)
    absent_members: set[int] = field(default_factory=set)
    unknown_channels: set[int] = field(default_factory=set)
    closed_dms: set[int] = field(default_factory=set)
    _scripted: dict[str, deque[DiscordResult]] = field(default_factory=lambda: defaultdict(deque))
    _forbidden: set[int] = field(default_factory=set)
    _by_nonce: dict[tuple[int, str], PostedMessage] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1_000_000))

    def script(self, method: str, *results: DiscordResult) -> None:
        assert method in METHODS, method
        self._scripted[method].extend(results)

    def forbid(self, guild_id: int) -> None:
        self._forbidden.add(guild_id)

    def allow(self, guild_id: int) -> None:
        self._forbidden.discard(guild_id)

    def calls_of(self, method: str) -> list[PortCall]:
        assert method in METHODS, method
        return [call for call in self.calls if call.method == method]

    def _answer(self, method: str, args: dict[str, Any], act: Any) -> DiscordResult:
        scripted = self._scripted[method]
        if scripted:
            result = scripted.popleft()
        elif args.get("guild_id") in self._forbidden:
            result = Forbidden(MISSING_PERMISSIONS, "Missing Permissions")
        else:
            result = act()
        self.calls.append(PortCall(method, args, result))
        return result

    async def ban(
        self, guild_id: int, user_id: int, *, reason: str, delete_message_seconds: int = 0
    ) -> DiscordResult:
        def act() -> DiscordResult:
            self.bans[(guild_id, user_id)] = reason
            return Done()

        args = {
            "guild_id": guild_id,
            "user_id": user_id,
            "reason": reason,
            "delete_message_seconds": delete_message_seconds,
        }
        return self._answer("ban", args, act)

    async def unban(self, guild_id: int, user_id: int, *, reason: str) -> DiscordResult:
        def act() -> DiscordResult:
            if self.bans.pop((guild_id, user_id), None) is None:
                return Gone(UNKNOWN_BAN, "Unknown Ban")
            return Done()

        args = {"guild_id": guild_id, "user_id": user_id, "reason": reason}
        return self._answer("unban", args, act)

    async def add_role(
        self, guild_id: int, user_id: int, role_id: int, *, reason: str
    ) -> DiscordResult:
        def act() -> DiscordResult:
            if user_id in self.absent_members:
                return Gone(UNKNOWN_MEMBER, "Unknown Member")
            self.roles.add((guild_id, user_id, role_id))
            return Done()

        args = {"guild_id": guild_id, "user_id": user_id, "role_id": role_id, "reason": reason}
        return self._answer("add_role", args, act)

    async def remove_role(
        self, guild_id: int, user_id: int, role_id: int, *, reason: str
    ) -> DiscordResult:
        def act() -> DiscordResult:
            if user_id in self.absent_members:
                return Gone(UNKNOWN_MEMBER, "Unknown Member")
            self.roles.discard((guild_id, user_id, role_id))
            return Done()

        args = {"guild_id": guild_id, "user_id": user_id, "role_id": role_id, "reason": reason}
        return self._answer("remove_role", args, act)

    async def send_message(
        self,
        channel_id: int,
        content: str,
        *,
        nonce: str,
        mention_user_ids: Sequence[int] = (),
    ) -> DiscordResult:
        def act() -> DiscordResult:
            if channel_id in self.unknown_channels:
                return Gone(UNKNOWN_CHANNEL, "Unknown Channel")
            return self._post(channel_id, content, nonce, tuple(mention_user_ids))

        args = {
            "channel_id": channel_id,
            "content": content,
            "nonce": nonce,
            "mention_user_ids": tuple(mention_user_ids),
        }
        return self._answer("send_message", args, act)

    async def send_dm(self, user_id: int, content: str, *, nonce: str) -> DiscordResult:
        def act() -> DiscordResult:
            if user_id in self.closed_dms:
                return Gone(CANNOT_DM_USER, "Cannot send messages to this user")
            return self._post(0, content, nonce, (), dm_user_id=user_id)

        args = {"user_id": user_id, "content": content, "nonce": nonce}
        return self._answer("send_dm", args, act)

    def _post(
        self,
        channel_id: int,
        content: str,
        nonce: str,
        mentions: tuple[int, ...],
        *,
        dm_user_id: int = 0,
    ) -> DiscordResult:
        """Post once per (channel, nonce), as Discord does with ``enforce_nonce``."""
        place = (channel_id or -dm_user_id, nonce)
        existing = self._by_nonce.get(place)
        if existing is not None:
            return Done(existing.message_id)
        posted = PostedMessage(next(self._ids), channel_id, content, nonce, mentions, dm_user_id)
        self._by_nonce[place] = posted
        self.messages.append(posted)
        return Done(posted.message_id)
