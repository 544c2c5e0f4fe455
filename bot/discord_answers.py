"""The REST path that answers Discord interactions (the payloads are ``bot.http.payload``'s).

Interaction callbacks, follow-ups and ``@original`` edits carry the interaction's token and
are not bound by the bot's global rate limit (Discord: "Interaction endpoints are not bound
to the bot's Global Rate Limit"). interactions.py sends every request through one global
lock of 45 requests a second, which capped the bot at about 22 answers a second, so these
requests go through ``InteractionAnswers`` instead: its own aiohttp session, no global
lock, each request bounded by the time its interaction still has, a 429 honoured for as
long as that time allows. Everything else (command sync, role grants) stays on the
library's client with its per-route buckets and 429 handling.

This module runs on the asyncio side of trio-asyncio; the transport calls it through
``trio_asyncio.aio_as_trio``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, Literal

import aiohttp

from limits import (
    answer_attempts_max,
    answer_connections_max,
    answer_request_seconds_max,
    answer_retry_pause_seconds,
)

# Discord's JSON error codes that say what happened to an answer.
_UNKNOWN_INTERACTION = 10062
_ALREADY_ACKNOWLEDGED = 40060
_UNKNOWN_WEBHOOK = 10015
_INVALID_WEBHOOK_TOKEN = 50027


# Why an answer did not reach the member; the label values of
# ``croupier_discord_unanswered_total``.
Reason = Literal[
    "expired",
    "already_acknowledged",
    "token_expired",
    "rate_limited",
    "refused",
    "server_error",
    "network",
    "shutdown",
]


class AnswerFailed(Exception):
    """Discord did not take an answer; ``reason`` is one of ``Reason``."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: Reason = reason
        self.detail = detail


class InteractionAnswers:
    """Sends interaction callbacks, follow-ups and ``@original`` edits and deletions.

    Open it on the asyncio loop with ``open()`` and close it with ``close()``. Each method
    takes ``until``, the ``time.monotonic()`` instant past which the answer is useless (the
    3 s deadline of an initial callback, the 15-minute life of a token); it raises
    ``AnswerFailed`` when Discord refuses the answer or the time runs out.
    """

    def __init__(self, api_url: str, user_agent: str) -> None:
        self._api_url = api_url.rstrip("/")
        self._headers = {"User-Agent": user_agent}
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        assert self._session is None, "opened twice"
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=answer_connections_max),
            headers=self._headers,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def callback(
        self, interaction_id: int, token: str, body: Mapping[str, Any], *, until: float
    ) -> None:
        await self._send("POST", f"/interactions/{interaction_id}/{token}/callback", body, until)

    async def edit_original(
        self, app_id: int, token: str, body: Mapping[str, Any], *, until: float
    ) -> None:
        await self._send("PATCH", f"/webhooks/{app_id}/{token}/messages/@original", body, until)

    async def delete_original(self, app_id: int, token: str, *, until: float) -> None:
        await self._send("DELETE", f"/webhooks/{app_id}/{token}/messages/@original", None, until)

    async def followup(
        self, app_id: int, token: str, body: Mapping[str, Any], *, until: float
    ) -> None:
        await self._send("POST", f"/webhooks/{app_id}/{token}", body, until)

    async def _send(
        self, method: str, path: str, body: Mapping[str, Any] | None, until: float
    ) -> None:
        session = self._session
        if session is None:
            raise AnswerFailed("shutdown", f"{method} {path}: the answer path is closed")
        url = self._api_url + path
        failures = 0
        while True:
            left = until - time.monotonic()
            if left <= 0:
                raise AnswerFailed("expired", f"{method} {path}: no time left to answer")
            timeout = aiohttp.ClientTimeout(total=min(left, answer_request_seconds_max))
            try:
                async with session.request(method, url, json=body, timeout=timeout) as response:
                    if 200 <= response.status < 300:
                        return
                    failure, pause = _classify(method, path, response, await _json(response))
            except (TimeoutError, aiohttp.ClientError, OSError) as err:
                late = time.monotonic() >= until
                failure = AnswerFailed(
                    "expired" if late else "network", f"{method} {path}: {err!r}"
                )
                pause = answer_retry_pause_seconds
            if failure.reason != "rate_limited":
                failures += 1
            if (
                pause is None
                or failures >= answer_attempts_max
                or time.monotonic() + pause >= until
            ):
                raise failure
            await asyncio.sleep(pause)


def _classify(
    method: str, path: str, response: aiohttp.ClientResponse, payload: Mapping[str, Any]
) -> tuple[AnswerFailed, float | None]:
    """What a refused answer means, and the pause before retrying it (None: retrying
    cannot help)."""
    what = f"{method} {path}: {response.status} {payload.get('message', '')}".strip()
    if response.status == 429:
        retry_after = payload.get("retry_after") or response.headers.get("Retry-After") or 1
        return AnswerFailed("rate_limited", what), max(
            float(retry_after), answer_retry_pause_seconds
        )
    if response.status >= 500:
        return AnswerFailed("server_error", what), answer_retry_pause_seconds
    reasons: dict[Any, Reason] = {
        _UNKNOWN_INTERACTION: "expired",
        _ALREADY_ACKNOWLEDGED: "already_acknowledged",
        _INVALID_WEBHOOK_TOKEN: "token_expired",
        _UNKNOWN_WEBHOOK: "token_expired",
    }
    return AnswerFailed(reasons.get(payload.get("code"), "refused"), what), None


async def _json(response: aiohttp.ClientResponse) -> Mapping[str, Any]:
    try:
        payload = await response.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return {}
    return payload if isinstance(payload, dict) else {}
