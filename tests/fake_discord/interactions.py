"""The fake Discord's interactions: building them, and the callbacks and webhooks answering them.

Tests build interaction payloads here (``slash_command``, ``button_press``,
``unknown_command``) and push them through the gateway. The client's answers come back
on the routes below, which enforce what Discord enforces: one initial callback per
interaction, within ``deadline_seconds``; follow-ups and ``@original`` edits only once
it was acknowledged and only for ``token_seconds``.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from tests.fake_discord.objects import (
    APP_ID,
    CHANNEL_ID,
    GUILD_ID,
    bot_message,
    edited_message,
    interaction_token,
    json_response,
    member_fields,
    user_object,
)
from tests.fake_discord.state import Callback, FakeDiscordState, Route, Sent

_CALLBACK_MESSAGE = 4
_CALLBACK_DEFERRED_MESSAGE = 5
_CALLBACK_DEFERRED_UPDATE = 6
_CALLBACK_UPDATE = 7
_OPTION_TYPE_USER = 6

# Discord's JSON error codes the fake answers with.
UNKNOWN_INTERACTION = 10062
ALREADY_ACKNOWLEDGED = 40060
UNKNOWN_WEBHOOK = 10015
INVALID_WEBHOOK_TOKEN = 50027


class InteractionsPart(FakeDiscordState):
    """Interaction payloads, the records of their answers, and the routes answering them."""

    # Records (copies, safe to read from the test's thread).

    def callbacks(self, interaction_id: int) -> list[Callback]:
        with self._lock:
            return [c for c in self._callbacks if c.interaction_id == interaction_id]

    @property
    def all_callbacks(self) -> list[Callback]:
        with self._lock:
            return list(self._callbacks)

    def acknowledgements(self) -> dict[int, float | None]:
        """For every interaction sent so far, the seconds from sending it to its accepted
        initial callback, or None while it has none."""
        with self._lock:
            first = {c.interaction_id: c.elapsed_seconds for c in self._callbacks if c.accepted}
            ids = [int(sent.payload["id"]) for sent in self._sent.values()]
        return {i: first.get(i) for i in ids}

    def unacknowledged(self) -> int:
        """How many interactions sent so far have no accepted initial callback."""
        with self._lock:
            return sum(1 for sent in self._sent.values() if not sent.acknowledged)

    def message(self, message_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._messages[message_id])

    def original_message(self, interaction_id: int) -> dict[str, Any] | None:
        """The message an interaction answered with (or updated), as Discord holds it now."""
        with self._lock:
            token = interaction_token(interaction_id)
            message_id = self._original.get(token)
            return copy.deepcopy(self._messages[message_id]) if message_id else None

    def followups(self, interaction_id: int) -> list[dict[str, Any]]:
        with self._lock:
            return [
                copy.deepcopy(m)
                for t, m in self._followups
                if t == interaction_token(interaction_id)
            ]

    async def wait_callbacks(
        self, interaction_id: int, count: int = 1, timeout: float = 10
    ) -> list[Callback]:
        return await self.wait_for(
            lambda: found if len(found := self.callbacks(interaction_id)) >= count else None,
            f"{count} callback(s) for interaction {interaction_id}",
            timeout,
        )

    def take_http_answer(self, payload: Mapping[str, Any], answer: Mapping[str, Any]) -> None:
        """Apply the answer an interactions endpoint gave in its HTTP response: Discord
        takes it as the interaction's initial callback."""
        with self._lock:
            self._sent.setdefault(payload["token"], Sent(dict(payload), time.monotonic()))
        self._callback(dict(answer), str(payload["id"]), payload["token"])

    # Building interactions.

    def slash_command(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        user_id: int = 42,
        permissions: int = 0,
        bots: Iterable[int] = (),
        interaction_id: int | None = None,
        guild_id: int = GUILD_ID,
    ) -> dict[str, Any]:
        """An application command interaction for a synced command, with option types
        taken from the synced definition and user options resolved."""
        with self._lock:
            synced = {c["name"]: c for c in self._commands.get(0, [])}
            assert name in synced, f"/{name} was never synced (synced: {sorted(synced)})"
            command_id = synced[name]["id"]
            types = {o["name"]: o["type"] for o in synced[name].get("options", [])}
        bots = set(bots)
        data_options, users, members = [], {}, {}
        for key, value in (options or {}).items():
            kind = types.get(key, 3)
            if kind == _OPTION_TYPE_USER:
                users[str(value)] = user_object(int(value), bot=int(value) in bots)
                members[str(value)] = member_fields(0)
                value = str(value)
            data_options.append({"name": key, "type": kind, "value": value})
        data: dict[str, Any] = {"id": command_id, "name": name, "type": 1}
        if data_options:
            data["options"] = data_options
        if users:
            data["resolved"] = {"users": users, "members": members}
        return self._interaction(2, data, user_id, permissions, interaction_id, guild_id)

    def unknown_command(self, name: str = "retired", *, user_id: int = 42) -> dict[str, Any]:
        """An application command interaction for a command the client never registered,
        as Discord delivers for a stale command a member's client still shows."""
        data = {"id": str(self._snowflake()), "name": name, "type": 1}
        return self._interaction(2, data, user_id, 0, None, GUILD_ID)

    def button_press(
        self,
        custom_id: str,
        *,
        message: Mapping[str, Any],
        user_id: int = 42,
        permissions: int = 0,
        interaction_id: int | None = None,
        guild_id: int = GUILD_ID,
    ) -> dict[str, Any]:
        """A component interaction: a press of button ``custom_id`` on ``message``."""
        payload = self._interaction(
            3,
            {"custom_id": custom_id, "component_type": 2},
            user_id,
            permissions,
            interaction_id,
            guild_id,
        )
        payload["message"] = dict(message)
        return payload

    def _interaction(
        self,
        kind: int,
        data: dict[str, Any],
        user_id: int,
        permissions: int,
        interaction_id: int | None,
        guild_id: int,
    ) -> dict[str, Any]:
        interaction_id = interaction_id or self._snowflake()
        return {
            "id": str(interaction_id),
            "application_id": str(APP_ID),
            "type": kind,
            "data": data,
            "guild_id": str(guild_id),
            "channel_id": str(CHANNEL_ID),
            "channel": {
                "id": str(CHANNEL_ID),
                "type": 0,
                "guild_id": str(guild_id),
                "name": "casino",
                "position": 0,
                "permission_overwrites": [],
                "nsfw": False,
                "parent_id": None,
            },
            "member": {"user": user_object(user_id), **member_fields(permissions)},
            "token": interaction_token(interaction_id),
            "version": 1,
            "locale": "en-US",
            "guild_locale": "en-US",
            "app_permissions": str((1 << 41) - 1),
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild_id)},
            "context": 0,
        }

    # Answering them.

    def _callback(self, body: Any, interaction_id: str, token: str) -> web.Response:
        now = time.monotonic()
        with self._lock:
            sent = self._sent.get(token)
            elapsed = now - sent.at if sent is not None else 0.0
            if sent is None or elapsed > self.deadline_seconds:
                refusal: tuple[int, str] | None = (UNKNOWN_INTERACTION, "Unknown interaction")
            elif sent.acknowledged:
                refusal = (ALREADY_ACKNOWLEDGED, "Interaction has already been acknowledged.")
            else:
                refusal = None
                sent.acknowledged = True
            self._callbacks.append(
                Callback(
                    int(interaction_id),
                    body["type"],
                    body.get("data") or {},
                    refusal is None,
                    elapsed,
                    refusal[0] if refusal else None,
                )
            )
        if refusal is not None:
            status = 404 if refusal[0] == UNKNOWN_INTERACTION else 400
            return json_response({"message": refusal[1], "code": refusal[0]}, status=status)
        assert sent is not None
        data = body.get("data") or {}
        if body["type"] in (_CALLBACK_MESSAGE, _CALLBACK_DEFERRED_MESSAGE):
            self._new_message(token, data, original=True)
        elif body["type"] in (_CALLBACK_UPDATE, _CALLBACK_DEFERRED_UPDATE):
            message_id = sent.payload["message"]["id"]
            with self._lock:
                self._original[token] = message_id
                if body["type"] == _CALLBACK_UPDATE:
                    self._messages[message_id] = edited_message(self._messages[message_id], data)
        return web.Response(status=204)

    def _webhook_refusal(self, token: str) -> web.Response | None:
        """Why a follow-up or edit with this interaction token is refused, if it is."""
        with self._lock:
            sent = self._sent.get(token)
            if sent is None or not sent.acknowledged:
                return json_response(
                    {"message": "Unknown Webhook", "code": UNKNOWN_WEBHOOK}, status=404
                )
            if time.monotonic() - sent.at > self.token_seconds:
                return json_response(
                    {"message": "Invalid Webhook Token", "code": INVALID_WEBHOOK_TOKEN},
                    status=401,
                )
        return None

    def _get_original(self, body: Any, app: str, token: str) -> web.Response:
        if (refusal := self._webhook_refusal(token)) is not None:
            return refusal
        with self._lock:
            message_id = self._original.get(token)
            message = self._messages.get(message_id) if message_id else None
        if message is None:
            return json_response({"message": "Unknown Message", "code": 10008}, status=404)
        return json_response(message)

    def _patch_original(self, body: Any, app: str, token: str) -> web.Response:
        if (refusal := self._webhook_refusal(token)) is not None:
            return refusal
        with self._lock:
            message_id = self._original.get(token)
            if message_id is None:
                return json_response({"message": "Unknown Message", "code": 10008}, status=404)
            self._messages[message_id] = edited_message(self._messages[message_id], body)
            return json_response(self._messages[message_id])

    def _delete_original(self, body: Any, app: str, token: str) -> web.Response:
        if (refusal := self._webhook_refusal(token)) is not None:
            return refusal
        with self._lock:
            message_id = self._original.pop(token, None)
            if message_id is None:
                return json_response({"message": "Unknown Message", "code": 10008}, status=404)
            del self._messages[message_id]
        return web.Response(status=204)

    def _followup(self, body: Any, app: str, token: str) -> web.Response:
        if (refusal := self._webhook_refusal(token)) is not None:
            return refusal
        message = self._new_message(token, body, original=False)
        with self._lock:
            self._followups.append((token, message))
            return json_response(message)

    def _new_message(
        self, token: str, data: Mapping[str, Any], *, original: bool
    ) -> dict[str, Any]:
        message_id = str(self._snowflake())
        message = bot_message(message_id, data)
        with self._lock:
            self._messages[message_id] = message
            if original:
                self._original[token] = message_id
        return message


_APP = r"([0-9]+)"
ROUTES: tuple[Route, ...] = (
    ("POST", re.compile(r"/interactions/([0-9]+)/([^/]+)/callback"), InteractionsPart._callback),
    (
        "GET",
        re.compile(rf"/webhooks/{_APP}/([^/]+)/messages/@original"),
        InteractionsPart._get_original,
    ),
    (
        "PATCH",
        re.compile(rf"/webhooks/{_APP}/([^/]+)/messages/@original"),
        InteractionsPart._patch_original,
    ),
    (
        "DELETE",
        re.compile(rf"/webhooks/{_APP}/([^/]+)/messages/@original"),
        InteractionsPart._delete_original,
    ),
    ("POST", re.compile(rf"/webhooks/{_APP}/([^/]+)"), InteractionsPart._followup),
)
