"""The fake Discord's moderation routes enforce what Discord does, and a lifted ban reaches
the gateway as GUILD_BAN_REMOVE, by hand or by the bot."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import trio

from tests.fake_discord import CHANNEL_ID, GUILD_ID, FakeDiscord

USER = 700_000_000_000_000_009


@pytest.fixture
def fake() -> Iterator[FakeDiscord]:
    with FakeDiscord() as running:
        yield running


def call(fake: FakeDiscord, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(fake.api_url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, json.loads(raw) if raw else None


def test_bans_are_idempotent_and_bounded(fake: FakeDiscord) -> None:
    """A second ban answers 204 again, a deletion past 7 days is refused with 50035, and
    lifting a ban twice answers Unknown Ban the second time."""
    path = f"/guilds/{GUILD_ID}/bans/{USER}"
    assert call(fake, "PUT", path, {"delete_message_seconds": 60})[0] == 204
    assert call(fake, "PUT", path, {"delete_message_seconds": 0})[0] == 204
    assert fake.bans == {(GUILD_ID, USER): 0}
    status, body = call(fake, "PUT", path, {"delete_message_seconds": 604_801})
    assert (status, body["code"]) == (400, 50035)
    assert call(fake, "DELETE", path)[0] == 204
    status, body = call(fake, "DELETE", path)
    assert (status, body["code"]) == (404, 10026)


def test_a_nonce_is_kept_for_nonce_seconds_only(fake: FakeDiscord) -> None:
    """Within ``nonce_seconds`` a resend returns the first message; after it, it posts."""
    fake.nonce_seconds = 0.0
    body = {"content": "hi", "nonce": "n1", "enforce_nonce": True}
    path = f"/channels/{CHANNEL_ID}/messages"
    first, second = call(fake, "POST", path, body)[1], call(fake, "POST", path, body)[1]
    assert first["id"] != second["id"] and len(fake.posted_messages) == 2
    without = {"content": "hi", "nonce": "n1"}
    assert call(fake, "POST", path, without)[1]["id"] not in (first["id"], second["id"])


async def gateway_events(
    fake: FakeDiscord, ready: threading.Event, wanted: int
) -> list[dict[str, Any]]:
    """Identify on the fake's gateway and collect ``wanted`` GUILD_BAN_REMOVE events."""
    found: list[dict[str, Any]] = []
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"ws://127.0.0.1:{fake.port}/gateway-ws") as ws,
    ):
        await ws.receive_json()
        await ws.send_json({"op": 2, "d": {"token": "t", "intents": 1 << 2}})
        async with asyncio.timeout(10):
            while len(found) < wanted:
                frame = await ws.receive_json()
                if frame.get("t") == "READY":
                    ready.set()
                elif frame.get("t") == "GUILD_BAN_REMOVE":
                    found.append(frame["d"])
    return found


async def test_lifted_bans_are_dispatched_on_the_gateway(fake: FakeDiscord) -> None:
    """A ban lifted by hand and one lifted by the bot each reach the gateway once."""
    ready = threading.Event()
    events: list[dict[str, Any]] = []

    def client() -> None:
        events.extend(asyncio.run(gateway_events(fake, ready, 2)))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, client)
        assert await trio.to_thread.run_sync(ready.wait, 10)
        fake.ban_by_hand(GUILD_ID, USER)
        await trio.to_thread.run_sync(fake.lift_ban, GUILD_ID, USER)
        fake.ban_by_hand(GUILD_ID, USER + 1)
        status, _ = await trio.to_thread.run_sync(
            call, fake, "DELETE", f"/guilds/{GUILD_ID}/bans/{USER + 1}"
        )
        assert status == 204
    assert [(e["guild_id"], e["user"]["id"]) for e in events] == [
        (str(GUILD_ID), str(USER)),
        (str(GUILD_ID), str(USER + 1)),
    ]
