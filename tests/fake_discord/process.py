"""The fake Discord in a child process, for load.

In the test's own process the fake's aiohttp server shares the interpreter lock with the
client under test, and under a burst of a thousand interactions it used two thirds of
the CPU the client needed: a measurement of the client would mostly measure the fake.
``FakeDiscordProcess`` runs a ``FakeDiscord`` in a child process and forwards calls to it
over a pipe, so the client gets a core of its own, as it would against Discord.

It offers the same methods and records as ``FakeDiscord`` (values are copies, as there),
including the waiting helpers, which run in the caller's trio and poll the child.
"""

from __future__ import annotations

import multiprocessing
import threading
from multiprocessing.connection import Connection
from typing import Any

from tests.fake_discord.server import FakeDiscord

_start_seconds_max = 30


def _child(conn: Connection, settings: dict[str, Any]) -> None:
    with FakeDiscord(**settings) as fake:
        conn.send(("ready", None))
        while True:
            request = conn.recv()
            if request[0] == "exit":
                return
            try:
                conn.send(("ok", _answer(fake, request)))
            except Exception as err:
                conn.send(("error", err))


def _answer(fake: FakeDiscord, request: tuple[Any, ...]) -> Any:
    op, name, *rest = request
    if op == "kind":
        return "method" if callable(getattr(fake, name)) else "value"
    if op == "get":
        return getattr(fake, name)
    args, kwargs = rest
    return getattr(fake, name)(*args, **kwargs)


class FakeDiscordProcess:
    """``with FakeDiscordProcess(**settings) as fake:``, settings as ``FakeDiscord``'s."""

    wait_for = FakeDiscord.wait_for
    wait_commands_synced = FakeDiscord.wait_commands_synced
    wait_callbacks = FakeDiscord.wait_callbacks
    wait_shards_ready = FakeDiscord.wait_shards_ready

    def __init__(self, **settings: Any) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._kinds: dict[str, str] = {}
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_child, args=(child, settings), name="fake-discord", daemon=True
        )

    def __enter__(self) -> FakeDiscordProcess:
        self._process.start()
        if not self._conn.poll(_start_seconds_max):
            self._process.kill()
            raise RuntimeError("the fake Discord process did not start")
        self._conn.recv()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._conn.send(("exit",))
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()

    def _request(self, *request: Any) -> Any:
        with self._lock:
            self._conn.send(request)
            status, value = self._conn.recv()
        if status == "error":
            raise value
        return value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        kind = self._kinds.get(name)
        if kind is None:
            kind = self._kinds[name] = self._request("kind", name)
        if kind == "value":
            return self._request("get", name)
        return lambda *args, **kwargs: self._request("call", name, args, kwargs)
