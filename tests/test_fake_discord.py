"""The fake Discord enforces what Discord enforces, so the transport's tests can trust it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from bot import CommandSet
from metrics import Metrics
from tests.conftest import sample
from tests.fake_discord import APP_ID, FakeDiscord
from tests.support.discord import serving
from tests.toy_commands import ToyBank

_RATELIMIT_HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-RateLimit-Reset-After",
    "X-RateLimit-Bucket",
)
_short_seconds = 0.2


@pytest.fixture
def fake() -> Iterator[FakeDiscord]:
    with FakeDiscord(deadline_seconds=_short_seconds, token_seconds=2 * _short_seconds) as running:
        yield running


@pytest.fixture
def commands(metrics: Metrics) -> CommandSet:
    return ToyBank().command_set(metrics)


async def call(
    fake: FakeDiscord, method: str, path: str, body: Any = None
) -> tuple[int, dict[str, str], Any]:
    """One request to the fake: status, headers, decoded JSON (None for no body)."""

    def send() -> tuple[int, dict[str, str], Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(fake.api_url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
                return response.status, dict(response.headers), json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            raw = err.read()
            return err.code, dict(err.headers), json.loads(raw) if raw else None

    return await trio.to_thread.run_sync(send)


async def test_every_response_carries_the_ratelimit_headers(fake: FakeDiscord) -> None:
    """Known routes, unknown routes and refusals all carry Discord's rate-limit headers."""
    for path in ("/users/@me", "/gateway/bot", "/channels/1/messages"):
        _, headers, _ = await call(fake, "GET", path)
        assert all(name in headers for name in _RATELIMIT_HEADERS), (path, headers)


async def test_a_429_on_demand_says_when_to_retry(fake: FakeDiscord) -> None:
    """A requested 429 carries retry_after in the body and the headers, and the global
    flag when it is the global limit; the next request goes through."""
    fake.rate_limit("/users/@me", retry_after=0.5, is_global=True)
    status, headers, body = await call(fake, "GET", "/users/@me")
    assert status == 429 and body["retry_after"] == 0.5 and body["global"] is True
    assert headers["Retry-After"] == "0.500" and headers["X-RateLimit-Global"] == "true"
    assert (await call(fake, "GET", "/users/@me"))[0] == 200


async def test_callbacks_once_in_time_and_webhooks_while_the_token_lives(
    fake: FakeDiscord, commands: CommandSet, metrics: Metrics
) -> None:
    """A second callback is refused with 40060, one past the deadline with 10062; a
    follow-up works until the token's life ends (then 50027). The transport counts the
    interaction it could not answer in time."""
    async with serving(fake, commands, metrics):
        await fake.wait_commands_synced()
        first = fake.send_interaction(fake.slash_command("balance"))
        await fake.wait_callbacks(first)
        # The transport's own answer to this one is held off by a long 429.
        payload = fake.slash_command("balance")
        late = int(payload["id"])
        fake.rate_limit(f"/interactions/{late}/.*", retry_after=10)
        fake.send_interaction(payload)
        token = f"token-{first}"
        again = await call(fake, "POST", f"/interactions/{first}/{token}/callback", {"type": 5})
        followup = await call(fake, "POST", f"/webhooks/{APP_ID}/{token}", {"content": "more"})
        await trio.sleep(2 * _short_seconds)
        expired = await call(fake, "POST", f"/webhooks/{APP_ID}/{token}", {"content": "more"})
        stale = await call(fake, "POST", f"/interactions/{late}/token-{late}/callback", {"type": 5})
    assert (again[0], again[2]["code"]) == (400, 40060)
    assert followup[0] == 200
    assert (expired[0], expired[2]["code"]) == (401, 50027)
    assert (stale[0], stale[2]["code"]) == (404, 10062)
    assert sample(metrics, "croupier_discord_unanswered_total", reason="rate_limited") == 1
