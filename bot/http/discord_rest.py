"""The few Discord REST calls the HTTP interactions endpoint makes, over httpx on trio.

The endpoint answers most interactions in the HTTP response itself, so REST is needed
only to register the commands (with the bot token), to finish an interaction that was
deferred (with the interaction's own token, which Discord does not count against the
bot's global rate limit) and to grant roles. A 429 is waited out for as long as Discord's
``retry_after`` says, a bounded number of times.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import trio

from actors.errors import RoleNotGrantable
from bot.http.payload import bot_may_manage_roles
from bot.model import Invocation
from limits import (
    rest_connections_max,
    rest_rate_limited_retries_max,
    rest_retry_after_seconds_max,
    rest_timeout_seconds,
)

log = logging.getLogger("croupier.discord_rest")


class DiscordRestError(Exception):
    """Discord refused a request; ``status`` and Discord's error ``code`` say why."""

    def __init__(self, method: str, path: str, status: int, code: int, message: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}, Discord code {code}: {message}")
        self.status = status
        self.code = code


class DiscordRest:
    """A REST client bound to one API base URL; open with ``async with``."""

    def __init__(self, api_url: str, token: str = "") -> None:
        self._token = token
        self._client = httpx.AsyncClient(
            base_url=api_url.rstrip("/"),
            timeout=rest_timeout_seconds,
            limits=httpx.Limits(
                max_connections=rest_connections_max,
                max_keepalive_connections=rest_connections_max,
            ),
            headers={"User-Agent": "DiscordBot (https://github.com/croupier, 0.1)"},
        )
        # Requests wait for a connection here rather than in httpx's pool: httpcore
        # scans its whole queue of waiting requests for each one it assigns, so with a
        # thousand deferred follow-ups queued the pool alone took a quarter of the
        # server's CPU. Trio's semaphore hands slots out in order at constant cost.
        self._slots = trio.Semaphore(rest_connections_max)

    async def __aenter__(self) -> DiscordRest:
        await self._client.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._client.__aexit__(*exc_info)

    async def application_id(self) -> int:
        """The bot's application id, from its token."""
        answer = await self._request("GET", "/oauth2/applications/@me", bot=True)
        return int(answer["id"])

    async def register_commands(
        self, application_id: int, definitions: Sequence[Mapping[str, Any]]
    ) -> None:
        """Replace the application's global commands with ``definitions``."""
        await self._request(
            "PUT", f"/applications/{application_id}/commands", bot=True, body=list(definitions)
        )

    async def edit_original(
        self, application_id: int, token: str, message: Mapping[str, Any]
    ) -> None:
        await self._request(
            "PATCH", f"/webhooks/{application_id}/{token}/messages/@original", body=message
        )

    async def delete_original(self, application_id: int, token: str) -> None:
        await self._request("DELETE", f"/webhooks/{application_id}/{token}/messages/@original")

    async def follow_up(self, application_id: int, token: str, message: Mapping[str, Any]) -> None:
        await self._request("POST", f"/webhooks/{application_id}/{token}", body=message)

    async def add_role(self, guild_id: int, user_id: int, role_id: int, reason: str) -> None:
        await self._request(
            "PUT",
            f"/guilds/{guild_id}/members/{user_id}/roles/{role_id}",
            bot=True,
            headers={"X-Audit-Log-Reason": reason},
        )

    async def remove_role(self, guild_id: int, user_id: int, role_id: int, reason: str) -> None:
        await self._request(
            "DELETE",
            f"/guilds/{guild_id}/members/{user_id}/roles/{role_id}",
            bot=True,
            headers={"X-Audit-Log-Reason": reason},
        )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        bot: bool = False,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        sent = dict(headers or {})
        if bot:
            sent["Authorization"] = f"Bot {self._token}"
        for attempt in range(rest_rate_limited_retries_max + 1):
            async with self._slots:
                answer = await self._client.request(method, path, json=body, headers=sent)
            if answer.status_code != 429 or attempt == rest_rate_limited_retries_max:
                break
            wait = min(_retry_after(answer), rest_retry_after_seconds_max)
            log.warning("Discord rate-limited %s %s; retrying in %.2f s", method, path, wait)
            await trio.sleep(wait)
        if answer.is_success:
            return answer.json() if answer.content else None
        code, message = _error(answer)
        raise DiscordRestError(method, path, answer.status_code, code, message)


def _retry_after(answer: httpx.Response) -> float:
    try:
        return float(answer.json()["retry_after"])
    except (ValueError, KeyError, TypeError):
        return float(answer.headers.get("Retry-After", 1.0))


def _error(answer: httpx.Response) -> tuple[int, str]:
    try:
        document = answer.json()
        return int(document.get("code", 0)), str(document.get("message", ""))
    except (ValueError, AttributeError):
        return 0, answer.text[:200]


class RestMemberRoles:
    """The invoking member's roles, changed by REST with the bot token, so that a command
    grants a role before it consumes what pays for it (see ``bot.model.MemberRoles``).
    Without a guild cache here, what the bot may grant is known only from the
    interaction's ``app_permissions`` (Manage Roles); Discord's 403 tells the rest."""

    def __init__(self, rest: DiscordRest, inv: Invocation, payload: Mapping[str, Any]) -> None:
        self._rest = rest
        self._guild_id, self._user_id = inv.guild_id, inv.user_id
        member = payload.get("member")
        held = member.get("roles") if isinstance(member, Mapping) else None
        self._held = frozenset(str(role) for role in held) if isinstance(held, list) else None
        self._may_manage_roles = bot_may_manage_roles(payload)

    def can_grant(self, role_id: int) -> bool | None:
        return False if self._may_manage_roles is False else None

    async def grant(self, role_id: int) -> bool:
        if self.can_grant(role_id) is False:
            raise RoleNotGrantable(role_id)
        try:
            await self._rest.add_role(self._guild_id, self._user_id, role_id, "Croupier item")
        except DiscordRestError as refused:
            if refused.status == 403:
                raise RoleNotGrantable(role_id) from None
            raise
        return self._held is None or str(role_id) not in self._held

    async def revoke(self, role_id: int) -> None:
        await self._rest.remove_role(self._guild_id, self._user_id, role_id, "Croupier item")
