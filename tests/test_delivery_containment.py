"""A transfer that cannot be delivered stops nothing: boot goes on, the transfer alone is
retried with backoff and counted, parked after a bounded number of attempts with its
coins still accounted, listed, and refunded to its sender exactly once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from actors import ParkedRecord, ScopeSettings, check_store, keys
from actors.errors import AlreadyRefunded, NotFound, NotRefundable
from actors.parked import PARKED, parked_key
from actors.records import OUTBOX
from actors.wallet import Pay
from bot.commands import build_command_set
from limits import Limits, RateLimit
from storage import env_path, open_store, open_store_readonly
from tests.conftest import sample
from tests.economy_fixtures import RunningGames, running_economy, running_games
from tests.support.console_json import ask_json
from tests.support.server_process import CROUPIER, ServerProcess

G, ALICE, BOB = 1, 42, 43
START = ScopeSettings().starting_balance
LOST = 7
LIMITS = Limits(delivery_attempts_max=3, delivery_retry_seconds_min=1.0)
FAILURES = "croupier_economy_delivery_failures_total"


async def plant_undeliverable(data_dir: Path, *, in_thread: bool = False) -> str:
    """What a payment to -5 left in a store before the economy refused such ids: the
    sender's debit and an outbox record that no wallet can accept. `croupier check`
    passes on it, as the issue says."""
    async with running_economy(data_dir, commit_in_thread=in_thread) as eco:
        await eco.economy.balance(G, ALICE)
        debit = await eco.economy.wallet(G, ALICE).ask(Pay("planted", -5, LOST, "to nobody"))
        report = eco.check()
        assert report.ok and report.figures["outbox_records"] == 1, report.text()
    return str(debit.transfer_id)


def outbox_ids(run: RunningGames) -> list[str]:
    with run.store.read() as txn:
        cursor = txn.cursor(db=run.store.db("outbox"))
        return [bytes(k).decode() for k in cursor.iternext(values=False)]


async def wait_parked(run: RunningGames, transfer_id: str) -> ParkedRecord:
    """Let the redelivery loop run its backoff (in mock time) until the transfer parks."""
    with trio.fail_after(3_600):
        while True:
            for record in run.economy.parked_transfers():
                if record.ident == transfer_id:
                    return record
            await trio.sleep(0.5)


async def test_boot_succeeds_and_the_bad_transfer_is_retried_then_parked(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Boot delivers around the bad record; it is tried again after 1 s, then 2 s, and
    parked at the third failure, out of the outbox, its 7 coins still summing to zero."""
    transfer_id = await plant_undeliverable(tmp_path)
    async with running_games(tmp_path, limits=LIMITS, commit_in_thread=False) as run:
        assert run.economy.failing_transfers() == {transfer_id: 1}
        assert sample(run.metrics, FAILURES, transfer="pay") == 1
        # Every other delivery goes on: a payment lands while the bad one waits.
        paid = await run.economy.pay(G, ALICE, BOB, 5, "p1")
        assert paid.status == "credited"
        started = trio.current_time()
        await trio.sleep(0.9)
        assert sample(run.metrics, FAILURES, transfer="pay") == 1
        await trio.sleep(0.2)
        assert run.economy.failing_transfers() == {transfer_id: 2}
        parked = await wait_parked(run, transfer_id)
        assert 3.0 <= trio.current_time() - started < 3.5
        assert sample(run.metrics, FAILURES, transfer="pay") == 3
        assert sample(run.metrics, "croupier_parked_records_total", kind="transfer") == 1
        assert run.economy.failing_transfers() == {}
        assert outbox_ids(run) == []
        assert (parked.amount, parked.scope, parked.attempts) == (LOST, G, 3)
        assert (parked.source, parked.target) == (f"user:{ALICE}", "user:-5")
        assert "not a member" in parked.error
        assert OUTBOX.decode(parked.value).transfer_id == transfer_id
        report = run.check()
        assert report.ok, report.text()
        assert report.figures["parked_transfers"] == 1
        assert report.figures["parked_transfer_coins"] == LOST
        # A sweep after parking finds nothing to do.
        assert await run.economy.deliver_pending() == 0


async def test_refund_by_the_admin_command_returns_the_money_once(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """/transfer-refund gives the 7 coins back to the sender; a second one is refused
    with already_refunded and changes nothing; the check still sums to zero."""
    transfer_id = await plant_undeliverable(tmp_path)
    async with running_games(tmp_path, limits=LIMITS, commit_in_thread=False) as run:
        await wait_parked(run, transfer_id)
        assert (await run.economy.balance(G, ALICE)).balance == START - LOST
        commands = build_command_set(
            economy=run.economy, metrics=run.metrics, rate_limit=RateLimit(burst_commands=100)
        )
        request = {"admin": True, "user": 7, "command": "transfer-refund"}
        member = {"user": 8, "command": "transfer-refund", "options": {"id": transfer_id}}
        first, second, refused, unknown = await ask_json(
            commands,
            {**request, "options": {"id": transfer_id}},
            {**request, "options": {"id": transfer_id}},
            member,
            {**request, "options": {"id": "pay:1:42:nothing"}},
        )
        assert first["ok"], first
        assert first["result"] == {
            "transfer_id": transfer_id,
            "user": ALICE,
            "amount": LOST,
            "balance": START,
        }
        assert second["error"]["code"] == "already_refunded", second
        assert refused["error"]["code"] == "not_permitted", refused
        assert unknown["error"]["code"] == "not_found", unknown
        assert (await run.economy.balance(G, ALICE)).balance == START
        [parked] = run.economy.parked_transfers()
        assert parked.refunded and parked.refunded_by == "admin 7"
        assert sample(run.metrics, "croupier_economy_parked_refunds_total") == 1
        report = run.check()
        assert report.ok, report.text()
        assert report.figures["parked_transfers"] == 0
        assert report.figures["parked_transfers_refunded"] == 1


async def test_an_admin_of_another_guild_cannot_refund_it(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A parked transfer is found only from its own guild's scope."""
    transfer_id = await plant_undeliverable(tmp_path)
    async with running_games(tmp_path, limits=LIMITS, commit_in_thread=False) as run:
        await wait_parked(run, transfer_id)
        with pytest.raises(NotFound):
            await run.economy.refund_parked(transfer_id, by="admin 7", guild_id=2)
        result = await run.economy.refund_parked(transfer_id, by="admin 7", guild_id=G)
        assert result.amount == LOST
        with pytest.raises(AlreadyRefunded):
            await run.economy.refund_parked(transfer_id, by="admin 7")


async def test_an_unreadable_outbox_record_is_parked_holding_nothing(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """An outbox value that is not a record does not stop boot; it is parked with its
    bytes kept, and refusing to refund it says why."""
    async with open_store(tmp_path, commit_in_thread=False) as store:
        await store.write(lambda txn: txn.put(b"pay:1:9:x", b"\xc1junk", db=store.db("outbox")))
    async with running_games(tmp_path, limits=LIMITS, commit_in_thread=False) as run:
        parked = await wait_parked(run, "pay:1:9:x")
        assert parked.value == b"\xc1junk" and parked.amount == 0
        assert "RecordDecodeError" in parked.error
        with pytest.raises(NotRefundable):
            await run.economy.refund_parked("pay:1:9:x", by="operator")


async def test_an_outbox_key_that_is_not_text_stops_no_delivery(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A damaged outbox key is counted and left alone; boot and payments go on."""
    async with open_store(tmp_path, commit_in_thread=False) as store:
        await store.write(lambda txn: txn.put(b"\xff\xfe", b"x", db=store.db("outbox")))
    async with running_games(tmp_path, limits=LIMITS, commit_in_thread=False) as run:
        assert sample(run.metrics, FAILURES, transfer="other") == 1
        paid = await run.economy.pay(G, ALICE, BOB, 5, "p1")
        assert paid.status == "credited"
        assert await run.economy.deliver_pending() == 0


async def test_a_payment_to_a_wallet_that_cannot_load_is_pending_then_parked(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """When the recipient's wallet cannot activate, /pay answers pending (not busy), a
    repeat of it counts no extra attempt, and the transfer parks and refunds."""
    async with open_store(tmp_path, commit_in_thread=False) as store:
        await store.write(
            lambda txn: txn.put(keys.wallet_key(G, BOB), b"\xc1", db=store.db("wallets"))
        )
    async with running_games(tmp_path, limits=LIMITS, commit_in_thread=False) as run:
        paid = await run.economy.pay(G, ALICE, BOB, 5, "p1")
        assert (paid.status, paid.balance) == ("pending", START - 5)
        again = await run.economy.pay(G, ALICE, BOB, 5, "p1")
        assert (again.status, again.transfer_id) == ("pending", paid.transfer_id)
        assert run.economy.failing_transfers() == {paid.transfer_id: 1}
        parked = await wait_parked(run, paid.transfer_id)
        assert (parked.amount, parked.target) == (5, f"user:{BOB}")
        await run.economy.refund_parked(paid.transfer_id, by="operator")
        assert (await run.economy.balance(G, ALICE)).balance == START


async def test_the_check_names_a_parked_record_copied_not_moved_or_unreadable(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A parked transfer put back in the outbox beside its parked copy, and a parked
    record that cannot be read, are each named by parked_records_sound."""
    transfer_id = await plant_undeliverable(tmp_path)
    async with running_games(tmp_path, limits=LIMITS, commit_in_thread=False) as run:
        parked = await wait_parked(run, transfer_id)
    async with open_store(tmp_path, commit_in_thread=False) as store:
        await store.write(
            lambda txn: txn.put(parked.source_key, parked.value, db=store.db("outbox"))
        )
        report = check_store(store)
        assert report.counts["parked_records_sound"] == 1, report.text()
        assert "is parked and still in outbox" in report.text()
        await store.write(lambda txn: txn.put(b"timer:x", b"\xc1", db=store.db("parked")))
        report = check_store(store)
        assert report.counts["parked_records_sound"] == 2, report.text()
        assert "cannot be read" in report.text()


def park_one(data_dir: Path) -> str:
    """A store holding one parked transfer, made in mock time."""

    async def make() -> str:
        transfer_id = await plant_undeliverable(data_dir)
        async with running_games(data_dir, limits=LIMITS, commit_in_thread=False) as run:
            await wait_parked(run, transfer_id)
        return transfer_id

    return trio.run(make, clock=trio.testing.MockClock(autojump_threshold=0))


def croupier(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CROUPIER_DATA_DIR": str(data_dir)}
    return subprocess.run([CROUPIER, *args], env=env, capture_output=True, text=True, timeout=60)


def test_the_command_line_lists_and_refunds_a_parked_transfer_once(tmp_path: Path) -> None:
    """`croupier transfers list-parked` shows it; `croupier transfers refund` returns its
    coins once and refuses the second time; `croupier check` passes throughout."""
    transfer_id = park_one(tmp_path)
    listed = croupier(tmp_path, "transfers", "list-parked", "--json")
    assert listed.returncode == 0, listed.stderr
    [entry] = json.loads(listed.stdout)
    assert (entry["kind"], entry["id"], entry["amount"]) == ("transfer", transfer_id, LOST)
    assert (entry["source"], entry["target"], entry["refunded"]) == ("user:42", "user:-5", False)
    text = croupier(tmp_path, "transfers", "list-parked").stdout
    assert transfer_id in text and "waiting for a refund" in text
    check = croupier(tmp_path, "check", "--json")
    assert check.returncode == 0, check.stdout
    assert json.loads(check.stdout)["figures"]["parked_transfer_coins"] == LOST

    first = croupier(tmp_path, "transfers", "refund", transfer_id, "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["result"] == {
        "transfer_id": transfer_id,
        "user": ALICE,
        "amount": LOST,
        "balance": START,
    }
    second = croupier(tmp_path, "transfers", "refund", transfer_id)
    assert second.returncode == 1
    assert "already refunded" in second.stderr and "Traceback" not in second.stderr
    missing = croupier(tmp_path, "transfers", "refund", "pay:nothing")
    assert missing.returncode == 1 and "no parked transfer" in missing.stderr
    assert croupier(tmp_path, "check").returncode == 0
    [entry] = json.loads(croupier(tmp_path, "transfers", "list-parked", "--json").stdout)
    assert entry["refunded"] and entry["refunded_by"] == "croupier transfers refund"


def metric_value(port: int, line_start: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith(line_start):
                return float(line.rsplit(" ", 1)[1])
    return None


@pytest.mark.slow
async def test_a_real_server_boots_on_a_store_with_an_undeliverable_transfer(
    tmp_path: Path,
) -> None:
    """Before the fix every start died in ActorCrashed delivering it; now the real server
    becomes ready, counts the failure, parks the transfer after its backoff, refuses a
    command-line refund while it holds the lock, and stops cleanly."""
    data = tmp_path / "data"
    transfer_id = await plant_undeliverable(data, in_thread=True)
    server = ServerProcess(data, {})
    server.start()
    try:
        await server.wait_ready()
        failures = f'{FAILURES}{{transfer="pay"}}'
        assert (metric_value(server.port, failures) or 0) >= 1, server.output()
        parked = 'croupier_parked_records_total{kind="transfer"}'
        with trio.fail_after(60):
            while metric_value(server.port, parked) != 1:
                await trio.sleep(0.5)
        refused = croupier(data, "transfers", "refund", transfer_id)
        assert refused.returncode == 1 and "/transfer-refund" in refused.stderr
        assert server.stop(signal.SIGTERM) == 0, server.output()
    finally:
        server.kill()
    assert "ActorCrashed" not in server.output()
    listed: list[dict[str, Any]] = json.loads(
        croupier(data, "transfers", "list-parked", "--json").stdout
    )
    assert [e["id"] for e in listed] == [transfer_id]
    assert croupier(data, "check").returncode == 0


def in_flight_or_parked(data_dir: Path, transfer_id: str) -> tuple[bool, bool]:
    """(in the outbox, parked) for the transfer, read from a stopped server's store."""
    with open_store_readonly(env_path(data_dir)) as store:
        report = check_store(store)
        assert report.ok, report.text()
        with store.read() as txn:
            in_outbox = txn.get(transfer_id.encode(), db=store.db("outbox")) is not None
            parked = txn.get(parked_key("transfer", transfer_id), db=store.db("parked"))
    return in_outbox, parked is not None


@pytest.mark.slow
async def test_sigkill_during_the_retries_leaves_the_coins_in_one_place(tmp_path: Path) -> None:
    """A real server killed with SIGKILL at random moments of the retry window (the last
    around the moment it parks): after each kill the coins are in flight or parked, never
    both and never neither, and they sum to zero; the run after parks it."""
    data = tmp_path / "data"
    transfer_id = await plant_undeliverable(data, in_thread=True)
    rng = random.Random(20_261_201)
    for wait in (rng.uniform(0, 3), rng.uniform(0, 3), rng.uniform(13, 17)):
        server = ServerProcess(data, {})
        server.start()
        try:
            await server.wait_ready()
            await trio.sleep(wait)
        finally:
            server.kill()
        in_outbox, parked = in_flight_or_parked(data, transfer_id)
        assert in_outbox != parked, (wait, in_outbox, parked)
    server = ServerProcess(data, {})
    server.start()
    try:
        await server.wait_ready()
        with trio.fail_after(60):
            while in_flight_or_parked(data, transfer_id) != (False, True):
                await trio.sleep(0.5)
        assert server.stop(signal.SIGTERM) == 0, server.output()
    finally:
        server.kill()
    listed = json.loads(croupier(data, "transfers", "list-parked", "--json").stdout)
    assert [(e["id"], e["amount"]) for e in listed] == [(transfer_id, LOST)]


async def test_parked_records_decode_as_written(tmp_path: Path) -> None:
    """A parked record keeps its original key and bytes exactly."""
    record = ParkedRecord("transfer", "t1", "outbox", b"t1", b"\x00\xff", "E", 2, 1.0, 1, 5)
    assert PARKED.decode(PARKED.encode(record)) == record
    assert parked_key("transfer", "t1") == b"transfer:t1"
