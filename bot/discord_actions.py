"""The Discord port over REST: bans, roles, messages and DMs, as typed answers.

This implements ``actors.discord_port.DiscordPort`` with httpx on trio against the
configured REST base URL (Discord's, a REST proxy's, or the fake Discord's in tests).
Unlike ``bot.http.discord_rest``, it never waits out a 429 itself: the answer goes back
to the timer service as a ``Retry`` with Discord's ``retry_after``, and the service
reschedules the timer, so no task sleeps holding a connection and no timer waits behind
another one's rate limit.

Discord's answers map as follows: 200/204 is ``Done``; Unknown Ban, Member, Channel,
Guild, Role or User and "cannot send messages to this user" are ``Gone``; a 403 with
Missing Permissions or Missing Access is ``Forbidden``; a 429 is a ``Retry`` with
``retry_after``; a server error, a timeout or a network failure is a ``Retry`` without.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx
import trio

from actors.discord_port import (
    DiscordResult,
    Done,
    Retry,
    audit_reason_chars_max,
    ban_delete_message_seconds_max,
    message_content_chars_max,
    message_nonce_chars_max,
    result_for,
)
from limits import (
    action_connections_max,
    action_retry_after_seconds_default,
    action_timeout_seconds,
    dm_channels_cached_max,
)

log = logging.getLogger("croupier.discord_actions")


class DiscordActions:
    """A ``DiscordPort`` over one REST base URL; open with ``async with``."""

    def __init__(self, api_url: str, token: str) -> None:
        self._client = httpx.AsyncClient(
            base_url=api_url.rstrip("/"),
            timeout=action_timeout_seconds,
            limits=httpx.Limits(
                max_connections=action_connections_max,
                max_keepalive_connections=action_connections_max,
            ),
            headers={
                "User-Agent": "DiscordBot (https://github.com/croupier, 0.1)",
                "Authorization": f"Bot {token}",
            },
        )
        self._slots = trio.Semaphore(action_connections_max)
        self._dm_channels: OrderedDict[int, int] = OrderedDict()

    async def __aenter__(self) -> DiscordActions:
        await self._client.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._client.__aexit__(*exc_info)

    async def ban(
        self, guild_id: int, user_id: int, *, reason: str, delete_message_seconds: int = 0
    ) -> DiscordResult:
        assert 0 <= delete_message_seconds <= ban_delete_message_seconds_max
        result, _ = await self._request(
            "PUT",
            f"/guilds/{guild_id}/bans/{user_id}",
            body={"delete_message_seconds": delete_message_seconds},
            reason=reason,
        )
        return result

    async def unban(self, guild_id: int, user_id: int, *, reason: str) -> DiscordResult:
        result, _ = await self._request(
            "DELETE", f"/guilds/{guild_id}/bans/{user_id}", reason=reason
        )
        return result

    async def add_role(
        self, guild_id: int, user_id: int, role_id: int, *, reason: str
    ) -> DiscordResult:
        path = f"/guilds/{guild_id}/members/{user_id}/roles/{role_id}"
        result, _ = await self._request("PUT", path, reason=reason)
        return result

    async def remove_role(
        self, guild_id: int, user_id: int, role_id: int, *, reason: str
    ) -> DiscordResult:
        path = f"/guilds/{guild_id}/members/{user_id}/roles/{role_id}"
        result, _ = await self._request("DELETE", path, reason=reason)
        return result

    async def send_message(
        self,
        channel_id: int,
        content: str,
        *,
        nonce: str,
        mention_user_ids: Sequence[int] = (),
    ) -> DiscordResult:
        assert 0 < len(content) <= message_content_chars_max, len(content)
        assert 0 < len(nonce) <= message_nonce_chars_max, nonce
        body = {
            "content": content,
            "nonce": nonce,
            # A retried send with the same nonce returns the message already posted
            # instead of posting it again.
            "enforce_nonce": True,
            # Only the members named may be pinged; never @everyone or a role.
            "allowed_mentions": {"parse": [], "users": [str(u) for u in mention_user_ids]},
        }
        result, answer = await self._request("POST", f"/channels/{channel_id}/messages", body=body)
        if isinstance(result, Done) and isinstance(answer, Mapping) and "id" in answer:
            return Done(int(answer["id"]))
        return result

    async def send_dm(self, user_id: int, content: str, *, nonce: str) -> DiscordResult:
        channel = self._dm_channels.get(user_id)
        if channel is None:
            result, answer = await self._request(
                "POST", "/users/@me/channels", body={"recipient_id": str(user_id)}
            )
            if not isinstance(result, Done):
                return result
            if not isinstance(answer, Mapping) or "id" not in answer:
                return Retry("Discord answered a DM channel without an id")
            channel = int(answer["id"])
            self._dm_channels[user_id] = channel
            if len(self._dm_channels) > dm_channels_cached_max:
                self._dm_channels.popitem(last=False)
        else:
            self._dm_channels.move_to_end(user_id)
        return await self.send_message(channel, content, nonce=nonce)

    async def _request(
        self, method: str, path: str, *, body: Any = None, reason: str | None = None
    ) -> tuple[DiscordResult, Any]:
        headers = {}
        if reason:
            # The header carries the reason URL-encoded (Discord decodes it), so that any
            # Unicode in a moderator's text survives an HTTP header.
            headers["X-Audit-Log-Reason"] = quote(reason[:audit_reason_chars_max], safe=" ")
        try:
            async with self._slots:
                answer = await self._client.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("Discord %s %s failed: %s", method, path, exc)
            return Retry(f"{type(exc).__name__}: {exc}"[:200]), None
        if answer.is_success:
            return Done(), (_json(answer) if answer.content else None)
        if answer.status_code == 429:
            return Retry("HTTP 429", _retry_after(answer)), None
        code, message = _error(answer)
        return result_for(answer.status_code, code, message), None


def _json(answer: httpx.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None


def _retry_after(answer: httpx.Response) -> float:
    document = _json(answer)
    for raw in (
        document.get("retry_after") if isinstance(document, Mapping) else None,
        answer.headers.get("Retry-After"),
    ):
        try:
            seconds = float(raw) if raw is not None else -1.0
        except ValueError:
            continue
        if seconds >= 0:
            return seconds
    return action_retry_after_seconds_default


def _error(answer: httpx.Response) -> tuple[int, str]:
    document = _json(answer)
    if isinstance(document, Mapping):
        try:
            return int(document.get("code", 0)), str(document.get("message", ""))[:200]
        except (TypeError, ValueError):
            pass
    return 0, answer.text[:200]
