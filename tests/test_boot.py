"""Boot does not grow with history: a real server answers before its full integrity scan,
and /readyz shows the scan pending, then its result."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lmdb

from actors import ShopItem, keys
from actors.records import SHOP_ITEM
from bench.games import load_settled_games
from storage import open_store
from tests.support.server_process import CROUPIER, fetch_json, free_port

GUILD = 1
# Enough history that the full scan takes far longer than answering one request.
SETTLED_GAMES = 100_000
SCAN_SECONDS_MAX = 300.0


@contextmanager
def console(data: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``croupier console --json`` on ``data``; the process and its metrics port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROUPIER_")}
    env.update(CROUPIER_DATA_DIR=str(data), CROUPIER_METRICS_ADDR=f"127.0.0.1:{port}")
    with subprocess.Popen(
        [CROUPIER, "console", "--json"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as process:
        try:
            yield process, port
        finally:
            if process.poll() is None:
                process.kill()


def first_reply(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(b'{"user": 7, "command": "balance"}\n')
    process.stdin.flush()
    reply: dict[str, Any] = json.loads(process.stdout.readline())
    return reply


def integrity_when_done(port: int) -> tuple[int, dict[str, Any]]:
    """Poll /readyz until the integrity condition is no longer pending."""
    deadline = time.monotonic() + SCAN_SECONDS_MAX
    while time.monotonic() < deadline:
        status, body = fetch_json(f"http://127.0.0.1:{port}/readyz")
        if body is not None and not body["conditions"]["integrity"]["pending"]:
            return status, body["conditions"]["integrity"]
        time.sleep(0.1)
    raise AssertionError(f"no integrity result in {SCAN_SECONDS_MAX} s")


async def test_the_first_reply_comes_before_the_full_scan_which_readyz_shows_pending(
    tmp_path: Path,
) -> None:
    """Over a long history the server answers at once; the scan's result comes after."""
    data = tmp_path / "data"
    async with open_store(data) as store:
        await load_settled_games(store, SETTLED_GAMES)
    with console(data) as (process, port):
        reply = first_reply(process)
        status, body = fetch_json(f"http://127.0.0.1:{port}/readyz")
        assert reply["ok"] and reply["result"]["balance"] >= 0, reply
        assert status == 200, body
        assert body["status"] == "ready"
        integrity = body["conditions"]["integrity"]
        assert integrity["pending"] and not integrity["ok"], integrity

        status, integrity = integrity_when_done(port)
        assert status == 200 and integrity["ok"], integrity
        assert process.stdin is not None
        process.stdin.close()
        assert process.wait(timeout=60) == 0


async def test_a_failed_background_scan_takes_the_server_out_of_readiness(
    tmp_path: Path,
) -> None:
    """The scan after ready still counts: a planted fault turns /readyz to 503, named."""
    data = tmp_path / "data"
    async with open_store(data) as store:
        await load_settled_games(store, 1_000)
    env = lmdb.open(str(data / "lmdb"), max_dbs=64)
    shop = env.open_db(b"shop")
    with env.begin(write=True) as txn:
        item = ShopItem(item_id=5, name="hat", price=10, stock=-1)
        txn.put(keys.item_key(GUILD, 5), SHOP_ITEM.encode(item), db=shop)
    env.close()
    with console(data) as (process, port):
        assert first_reply(process)["ok"]
        status, integrity = integrity_when_done(port)
        assert status == 503
        assert not integrity["ok"] and "stock_not_negative=1" in integrity["detail"], integrity
