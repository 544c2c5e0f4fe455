"""The Discord port: what timers and the scheduler ask of Discord, and Discord's answers.

The domain (tempbans, birthday roles, reminders) acts on Discord through this Protocol
only; the REST client in ``bot`` implements it, and tests use an in-memory fake. Every
call answers with one of four typed results instead of raising, so a timer handler can
decide from the answer alone:

- ``Done``: Discord did it (or had already done it: bans and roles are idempotent, and a
  message resent with the same ``nonce`` returns the original message);
- ``Gone``: a permanent answer that ends the timer (the ban was already lifted, the
  member left, the channel was deleted, the member does not accept DMs);
- ``Forbidden``: the bot lacks a permission in the guild; every Discord timer of that
  guild backs off until an administrator fixes it;
- ``Retry``: a transient failure (rate limit, server error, network); ``retry_after_seconds``
  is Discord's own figure when it gave one (a 429).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

# Discord's bounds, which the port's implementations truncate or assert against; they
# live with every other limit, and are named here for the port's users.
from limits import audit_reason_chars_max as audit_reason_chars_max
from limits import ban_delete_message_seconds_max as ban_delete_message_seconds_max
from limits import message_content_chars_max as message_content_chars_max
from limits import message_nonce_chars_max as message_nonce_chars_max

# Discord's JSON error codes that the port maps to permanent answers.
UNKNOWN_CHANNEL = 10003
UNKNOWN_GUILD = 10004
UNKNOWN_MEMBER = 10007
UNKNOWN_MESSAGE = 10008
UNKNOWN_ROLE = 10011
UNKNOWN_USER = 10013
UNKNOWN_BAN = 10026
CANNOT_DM_USER = 50007
MISSING_ACCESS = 50001
MISSING_PERMISSIONS = 50013

GONE_CODES = frozenset(
    {
        UNKNOWN_CHANNEL,
        UNKNOWN_GUILD,
        UNKNOWN_MEMBER,
        UNKNOWN_MESSAGE,
        UNKNOWN_ROLE,
        UNKNOWN_USER,
        UNKNOWN_BAN,
        CANNOT_DM_USER,
    }
)
FORBIDDEN_CODES = frozenset({MISSING_ACCESS, MISSING_PERMISSIONS})


@dataclass(frozen=True)
class Done:
    """Discord did it. ``message_id`` is the message posted (0 for other calls)."""

    message_id: int = 0


@dataclass(frozen=True)
class Gone:
    """A permanent answer: the thing acted on no longer exists, so the timer ends."""

    code: int
    message: str = ""


@dataclass(frozen=True)
class Forbidden:
    """The bot lacks a permission (or access) in the guild."""

    code: int
    message: str = ""


@dataclass(frozen=True)
class Retry:
    """A transient failure; try again later (after ``retry_after_seconds`` if given)."""

    reason: str
    retry_after_seconds: float | None = None

    @property
    def rate_limited(self) -> bool:
        return self.retry_after_seconds is not None


DiscordResult = Done | Gone | Forbidden | Retry


class DiscordPort(Protocol):
    """The Discord actions of the domain. Implementations never raise for Discord's
    answers or for network failures: they return a ``DiscordResult``."""

    async def ban(
        self, guild_id: int, user_id: int, *, reason: str, delete_message_seconds: int = 0
    ) -> DiscordResult: ...

    async def unban(self, guild_id: int, user_id: int, *, reason: str) -> DiscordResult: ...

    async def add_role(
        self, guild_id: int, user_id: int, role_id: int, *, reason: str
    ) -> DiscordResult: ...

    async def remove_role(
        self, guild_id: int, user_id: int, role_id: int, *, reason: str
    ) -> DiscordResult: ...

    async def send_message(
        self,
        channel_id: int,
        content: str,
        *,
        nonce: str,
        mention_user_ids: Sequence[int] = (),
    ) -> DiscordResult: ...

    async def send_dm(self, user_id: int, content: str, *, nonce: str) -> DiscordResult: ...


def result_for(status: int, code: int, message: str = "") -> DiscordResult:
    """Classify an HTTP answer of Discord that is neither a success nor a 429.

    A known permanent code is ``Gone`` and a missing permission ``Forbidden``. Anything
    else (a server error, a refused token, a 4xx this code does not know) is a ``Retry``
    without ``retry_after``: it counts as a failed attempt, so a timer that keeps getting
    it is parked where an operator sees it, rather than dropped on a guess."""
    assert not 200 <= status < 300 and status != 429, status
    if code in GONE_CODES:
        return Gone(code, message)
    if code in FORBIDDEN_CODES or status == 403:
        return Forbidden(code, message)
    return Retry(f"HTTP {status}, Discord code {code}: {message}"[:200])
