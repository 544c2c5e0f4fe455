"""The real server process end to end: the real interactions.py client against a fake
Discord, restarts (SIGKILL and SIGTERM) with a game in flight, the instance lock, and the
console's JSON mode through the real command line."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from actors import check_store, keys
from actors.records import WALLET
from storage import InstanceLock, env_path, open_store_readonly
from tests.fake_discord import GUILD_ID, REFUSED_TOKEN, FakeDiscord
from tests.support.server_process import CROUPIER, ServerProcess, fetch_json, free_port

EPHEMERAL = 1 << 6
MANAGE_GUILD = 1 << 5
PLAYER = 42
OTHER = 43


@pytest.fixture
def fake() -> Iterator[FakeDiscord]:
    with FakeDiscord() as running:
        yield running


# A generous rate limit, so a test can send many commands as one user.
FAST = {"CROUPIER_RATELIMIT_COMMANDS_PER_MINUTE": "60000", "CROUPIER_RATELIMIT_BURST": "1000"}


@asynccontextmanager
async def discord_server(
    fake: FakeDiscord, data_dir: Path, env: Mapping[str, str] = FAST
) -> AsyncIterator[ServerProcess]:
    server = ServerProcess(
        data_dir,
        {
            "CROUPIER_DISCORD_TOKEN": "fake-token",
            "CROUPIER_DISCORD_API_URL": fake.api_url,
            **env,
        },
    )
    server.start()
    try:
        await server.wait_ready()
        yield server
    finally:
        server.kill()


async def answer(fake: FakeDiscord, interaction_id: int) -> dict[str, Any]:
    """The message a user finally sees for an interaction (immediate or deferred)."""
    [first, *_] = await fake.wait_callbacks(interaction_id, timeout=20)
    if first.type in (4, 7):
        return dict(first.data)

    def settled() -> dict[str, Any] | None:
        followups = fake.followups(interaction_id)
        if followups:
            return followups[-1]
        original = fake.original_message(interaction_id)
        return original if original and original.get("embeds") else None

    return await fake.wait_for(settled, f"the deferred answer to {interaction_id}", 20)


async def command(
    fake: FakeDiscord, name: str, options: Mapping[str, Any] | None = None, **kwargs: Any
) -> dict[str, Any]:
    interaction = fake.send_interaction(fake.slash_command(name, options, **kwargs))
    return await answer(fake, interaction)


def embed(message: Mapping[str, Any]) -> dict[str, Any]:
    [only] = message["embeds"]
    return dict(only)


def is_error(message: Mapping[str, Any]) -> bool:
    return bool(message.get("flags", 0) & EPHEMERAL)


def buttons(message: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Buttons of a message by custom id."""
    return {
        button["custom_id"]: button
        for row in message.get("components", [])
        for button in row["components"]
    }


def balance_in_store(data_dir: Path, user: int) -> int:
    """Read a balance from the live store (LMDB readers never block the server)."""
    with open_store_readonly(env_path(data_dir)) as store, store.read() as txn:
        raw = txn.get(keys.wallet_key(GUILD_ID, user), db=store.db("wallets"))
        assert raw is not None, f"no wallet for {user}"
        return WALLET.decode(raw).balance


def integrity_ok(data_dir: Path) -> bool:
    with open_store_readonly(env_path(data_dir)) as store:
        report = check_store(store)
    assert report.ok, report.text()
    return True


async def test_every_command_through_discord(fake: FakeDiscord, tmp_path: Path) -> None:
    """Every command answers through the real client; admin commands need Manage Server;
    a duplicated INTERACTION_CREATE changes nothing twice; roles are granted on use."""
    data = tmp_path / "data"
    async with discord_server(fake, data):
        synced = {c["name"] for c in await fake.wait_commands_synced(timeout=30)}
        assert {"balance", "pay", "blackjack", "verify", "economy-config", "shop-add"} <= synced
        admin = {"permissions": MANAGE_GUILD}

        start = embed(await command(fake, "balance"))
        assert "coins" in json.dumps(start)
        assert not is_error(await command(fake, "daily"))
        assert not is_error(await command(fake, "work"))
        assert is_error(await command(fake, "daily")), "the cooldown refuses a second daily"

        before = balance_in_store(data, PLAYER)
        pay = fake.slash_command("pay", {"user": OTHER, "amount": 25, "reason": "lunch"})
        first = fake.send_interaction(pay)
        fake.send_interaction(pay)
        await fake.wait_callbacks(first, count=2, timeout=20)
        assert balance_in_store(data, PLAYER) == before - 25, "a duplicate pays once"
        assert is_error(await command(fake, "pay", {"user": PLAYER, "amount": 1}))
        assert is_error(await command(fake, "pay", {"user": 99, "amount": 1}, bots=[99]))

        assert is_error(
            await command(fake, "money-add", {"user": OTHER, "amount": 5, "reason": "x"})
        )
        for name, options in [
            ("money-add", {"user": PLAYER, "amount": 1_000, "reason": "prize"}),
            ("money-remove", {"user": OTHER, "amount": 5, "reason": "fine"}),
            ("money-set", {"user": 44, "amount": 7, "reason": "fix"}),
            ("reset-user", {"user": 44, "reason": "fresh start"}),
            ("economy-config", {}),
            ("economy-config", {"setting": "game_cooldown_seconds", "value": "0"}),
            ("shop-add", {"name": "VIP", "price": 50, "role": "777", "sell_price": 10}),
            ("shop-edit", {"item": "VIP", "price": 60}),
        ]:
            reply = await command(fake, name, options, **admin)
            assert not is_error(reply), (name, embed(reply))
        for name, options in [
            ("leaderboard", {}),
            ("history", {}),
            ("shop", {}),
            ("buy", {"item": "VIP", "quantity": 2}),
            ("sell", {"item": "VIP"}),
            ("inventory", {}),
            ("use", {"item": "VIP"}),
            ("coinflip", {"stake": 5, "choice": "heads"}),
            ("dice", {"stake": 5, "bet": "number", "number": 4}),
            ("slots", {"stake": 5}),
            ("roulette", {"stake": 5, "bet": "straight", "number": 7}),
            ("blackjack-rules", {}),
            ("slots-table", {}),
        ]:
            reply = await command(fake, name, options)
            assert not is_error(reply), (name, embed(reply))
        assert (GUILD_ID, PLAYER, 777) in fake.role_grants
        spun = await command(fake, "coinflip", {"stake": 5, "choice": "tails"})
        game_id = json.dumps(spun).split("/verify game:")[1].split("`")[0].split('"')[0].strip()
        # The game's seed is revealed once its seed pair is rotated.
        await command(fake, "fairness", {"client_seed": "from discord"})
        verified = embed(await command(fake, "verify", {"game": game_id}))
        assert "match" in json.dumps(verified).lower()
        await command(fake, "shop-retire", {"item": "VIP"}, **admin)
        assert is_error(await command(fake, "buy", {"item": "VIP"}))
        assert fake.unknown_routes == []
    assert integrity_ok(data)


async def play_until_live(fake: FakeDiscord) -> tuple[int, dict[str, Any]]:
    """Start blackjack rounds until one is still live after the deal (no natural)."""
    for _ in range(20):
        interaction = fake.send_interaction(fake.slash_command("blackjack", {"stake": 10}))
        message = await answer(fake, interaction)
        live = [b for b in buttons(message).values() if not b.get("disabled")]
        if live:
            return interaction, message
    raise AssertionError("twenty deals in a row ended at once")


async def test_blackjack_buttons_survive_a_restart(fake: FakeDiscord, tmp_path: Path) -> None:
    """A blackjack message's buttons keep working after the server is SIGKILLed and
    restarted; another player's press is refused; the money adds up."""
    data = tmp_path / "data"
    async with discord_server(fake, data) as server:
        await fake.wait_commands_synced(timeout=30)
        await command(
            fake,
            "economy-config",
            {"setting": "game_cooldown_seconds", "value": "0"},
            permissions=MANAGE_GUILD,
        )
        start, message = await play_until_live(fake)
        stand = next(cid for cid in buttons(message) if cid.endswith(":stand"))
        server.kill()
        server.start()
        # Ready includes "Discord connected", reported once the commands are in sync.
        ready = await server.wait_ready()
        assert ready["conditions"]["discord_connected"]["ok"]
        original = fake.original_message(start)
        assert original is not None
        intruder = fake.send_interaction(fake.button_press(stand, message=original, user_id=OTHER))
        assert is_error(await answer(fake, intruder))
        press = fake.send_interaction(fake.button_press(stand, message=original))
        settled = await answer(fake, press)
        assert not is_error(settled)
        assert not [b for b in buttons(settled).values() if not b.get("disabled")]
        assert "seed" in json.dumps(embed(settled)).lower()
        again = fake.send_interaction(fake.button_press(stand, message=original))
        assert is_error(await answer(fake, again)), "a settled game takes no more moves"
    assert integrity_ok(data)


async def test_sigterm_shuts_down_cleanly_and_a_second_instance_is_refused(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    """A second server on the same data dir exits at once with status 1 naming the pid;
    the default per-user rate limit answers "try again in N s"; SIGTERM stops the first
    cleanly (exit 0) and releases the lock."""
    data = tmp_path / "data"
    async with discord_server(fake, data, env={}) as server:
        assert server.process is not None
        await fake.wait_commands_synced(timeout=30)
        replies = [embed(await command(fake, "balance")) for _ in range(12)]
        limited = [r for r in replies if "too fast" in r.get("description", "")]
        assert limited and "try again in" in limited[0]["description"]
        second = subprocess.run(
            [CROUPIER, "run"], env=server.env, capture_output=True, text=True, timeout=30
        )
        assert second.returncode == 1
        assert f"pid {server.process.pid}" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        assert server.stop(signal.SIGTERM) == 0, server.output()
        assert "event=stopped" in server.output()
    with InstanceLock(data):
        pass


def test_console_json_through_the_command_line(tmp_path: Path) -> None:
    """`croupier console --json` answers one JSON line per request, then exits at EOF."""
    server = ServerProcess(tmp_path / "data", {}, command="console")
    requests = [
        {"user": 42, "guild": 1, "command": "daily"},
        {"user": 42, "guild": 1, "command": "pay", "options": {"user": 43, "amount": 50}},
        {"user": 42, "guild": 1, "command": "pay", "options": {"user": 43, "amount": 10**9}},
        {"user": 42, "guild": 1, "command": "blackjack", "options": {"stake": 5}},
        "not json",
    ]
    lines = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in requests)
    done = subprocess.run(
        [CROUPIER, "console", "--json"],
        input=lines,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    replies = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [r["ok"] for r in replies] == [True, True, False, True, False]
    assert replies[1]["result"]["status"] == "credited"
    assert replies[2]["error"]["code"] == "insufficient_funds"
    # A natural settles at the deal (no buttons); otherwise the round has its buttons.
    dealt = replies[3]
    if dealt["result"]["phase"] == "live":
        assert any(b["custom_id"].startswith("bj:") for b in dealt["buttons"])
    else:
        assert dealt["result"]["phase"] == "settled" and dealt["buttons"] == []
    assert replies[4]["error"]["code"] == "bad_request"


async def test_an_unreachable_discord_is_retried_not_fatal(tmp_path: Path) -> None:
    """With Discord unreachable the server stays up, says why in /readyz and its log,
    keeps retrying, and still stops cleanly on SIGTERM."""
    closed = free_port()
    server = ServerProcess(
        tmp_path / "data",
        {
            "CROUPIER_DISCORD_TOKEN": "fake-token",
            "CROUPIER_DISCORD_API_URL": f"http://127.0.0.1:{closed}",
        },
    )
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}"
        with trio.fail_after(60):
            # The second failed attempt is logged with a doubled backoff.
            while "event=discord_unavailable" not in server.output() or (
                "retry_in_seconds=2.0" not in server.output()
            ):
                assert server.process is not None and server.process.poll() is None
                await trio.sleep(0.1)
        status, body = await trio.to_thread.run_sync(fetch_json, f"{url}/readyz")
        assert status == 503 and body["conditions"]["discord_connected"]["ok"] is False
        assert body["conditions"]["store_open"]["ok"] is True
        assert (await trio.to_thread.run_sync(fetch_json, f"{url}/healthz"))[0] == 200
        assert server.stop(signal.SIGTERM) == 0, server.output()
        assert "stray asyncio error" not in server.output(), "a failed attempt leaked"
    finally:
        server.kill()


def test_a_refused_token_stops_the_server_with_one_line(fake: FakeDiscord, tmp_path: Path) -> None:
    """A token Discord refuses ends start-up with exit 1 and one line naming the setting."""
    server = ServerProcess(
        tmp_path / "data",
        {"CROUPIER_DISCORD_TOKEN": REFUSED_TOKEN, "CROUPIER_DISCORD_API_URL": fake.api_url},
    )
    done = subprocess.run(
        [CROUPIER, "run"], env=server.env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("croupier:")]
    assert len(errors) == 1 and "CROUPIER_DISCORD_TOKEN" in errors[0], done.stderr[-2000:]
