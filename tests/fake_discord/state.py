"""What the fake Discord is set up with and what it has recorded, shared by its parts.

The gateway (``gateway.py``), the REST routes (``rest.py``), the interaction callbacks and
webhooks (``interactions.py``) and the guild routes (``guild.py``) each add their methods
to ``FakeDiscordState``; they meet on the records below, which one lock guards because
the fake's asyncio thread writes them while the test's thread reads them.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import trio
from aiohttp import web

from tests.fake_discord.oauth import FakeOAuth
from tests.fake_discord.objects import BOT_ROLE_POSITION, DISCORD_EPOCH_MS, GUILD_ID

T = TypeVar("T")

# Discord's figures, the defaults of the fake.
INTERACTION_DEADLINE_SECONDS = 3.0
INTERACTION_TOKEN_SECONDS = 15 * 60.0
IDENTIFY_INTERVAL_SECONDS = 5.0
GLOBAL_REQUESTS_PER_SECOND = 50

# A REST route: its method, the pattern its path fully matches, and the handler, called
# with the fake, the JSON body and the pattern's groups.
Route = tuple[str, re.Pattern[str], Callable[..., web.Response]]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: Mapping[str, str]
    body: Any
    # Seconds on the fake's monotonic clock when the request arrived.
    at: float = 0.0
    status: int = 0
    # The request's headers that say what it does (the audit-log reason), not its token.
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Callback:
    """One ``POST /interactions/{id}/{token}/callback``. ``accepted`` is False when Discord
    would refuse it: a second answer (``code`` 40060) or one past the deadline (10062).
    ``elapsed_seconds`` runs from when the fake sent the interaction."""

    interaction_id: int
    type: int
    data: Mapping[str, Any]
    accepted: bool
    elapsed_seconds: float = 0.0
    code: int | None = None


@dataclass(frozen=True)
class Identify:
    """One IDENTIFY on the gateway: the shard it asked for and whether it was let in."""

    shard_id: int
    shard_count: int
    at: float
    accepted: bool


@dataclass
class Session:
    """A client's gateway websocket, and the shard it identified as once it did."""

    ws: web.WebSocketResponse
    shard_id: int | None = None
    sequence: int = 0


@dataclass
class Bucket:
    """A rate-limit bucket: ``used`` requests in the window that ends at ``resets_at``."""

    name: str
    used: int = 0
    resets_at: float = 0.0


@dataclass
class Forced429:
    """A 429 a test asked for with ``rate_limit``, for ``count`` more matching requests."""

    pattern: re.Pattern[str]
    method: str | None
    count: int
    retry_after: float
    is_global: bool


@dataclass
class Sent:
    """An interaction the fake sent, and whether its initial callback was accepted."""

    payload: dict[str, Any]
    at: float
    acknowledged: bool = False


@dataclass(eq=False)
class FakeDiscordState:
    """The settings of a fake Discord and its records.

    ``roles`` maps the ids of the guilds' roles, other than ``@everyone`` and the bot's,
    to their positions; a role the guild does not list is treated as an ordinary role
    below the bot's.
    """

    heartbeat_interval_ms: int = 250
    guild_ids: Sequence[int] = (GUILD_ID,)
    shards: int = 1
    max_concurrency: int = 16
    deadline_seconds: float = INTERACTION_DEADLINE_SECONDS
    token_seconds: float = INTERACTION_TOKEN_SECONDS
    identify_interval_seconds: float = IDENTIFY_INTERVAL_SECONDS
    roles: Mapping[int, int] = field(default_factory=dict)
    bot_role_position: int = BOT_ROLE_POSITION
    bucket_limit: int = 50
    bucket_window_seconds: float = 1.0
    global_per_second: int = GLOBAL_REQUESTS_PER_SECOND
    port: int = 0
    # Discord's OAuth2 endpoints, for the dashboard's login (tests/fake_discord/oauth.py).
    oauth: FakeOAuth | None = None

    def __post_init__(self) -> None:
        self.guild_ids = tuple(self.guild_ids)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._requests: list[RecordedRequest] = []
        self._unknown: list[tuple[str, str]] = []
        self._commands: dict[int, list[dict[str, Any]]] = {}
        self._command_puts: list[tuple[int, list[dict[str, Any]]]] = []
        self._callbacks: list[Callback] = []
        self._sent: dict[str, Sent] = {}
        self._messages: dict[str, dict[str, Any]] = {}
        self._original: dict[str, str] = {}
        self._followups: list[tuple[str, dict[str, Any]]] = []
        self._role_grants: list[tuple[int, int, int]] = []
        self._gateway_log: list[dict[str, Any]] = []
        self._identifies: list[Identify] = []
        self._heartbeats = 0
        self._sessions: list[Session] = []
        self._buckets: dict[str, Bucket] = {}
        self._global = Bucket("global")
        self._forced: list[Forced429] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def _snowflake(self) -> int:
        with self._lock:
            sequence = next(self._ids)
        return ((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | (sequence & 0x3FFFFF)

    # Waiting from trio, by bounded polling of the records.

    async def wait_for(
        self,
        probe: Callable[[], T | None],
        what: str,
        timeout: float = 10,
        *,
        interval: float = 0.005,
    ) -> T:
        """Poll ``probe`` every ``interval`` seconds until it returns something."""
        with trio.move_on_after(timeout):
            while (found := probe()) is None:
                await trio.sleep(interval)
            return found
        raise AssertionError(f"the fake Discord saw no {what} within {timeout} s")
