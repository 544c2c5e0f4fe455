"""Economy crash test: a real server process is killed with SIGKILL under a payment load."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from actors import ScopeSettings, keys
from actors.accounts import user_account
from actors.records import HISTORY
from tests.economy_fixtures import running_economy
from tests.support.economy_load import PAYERS, USERS

SUPPORT = Path(__file__).parent / "support"
CYCLES = 4
START = ScopeSettings().starting_balance


@dataclass(frozen=True)
class Ack:
    transfer_id: str
    user: int
    to: int
    amount: int
    status: str


@dataclass
class Printed:
    """What the killed processes said: every payment tried and every one acknowledged."""

    tried: set[str]
    acked: dict[str, Ack]

    def take(self, line: str) -> bool:
        """Record one line; True when it acknowledged a payment."""
        word, key, *rest = line.split()
        if word == "try":
            self.tried.add(key)
            return False
        assert word == "ack", line
        transfer_id, user, to, amount, status = rest
        self.acked[key] = Ack(transfer_id, int(user), int(to), int(amount), status)
        return True


def run_and_kill(data_dir: Path, run: int, acks_before_kill: int, printed: Printed) -> None:
    """Start the load on ``data_dir``, SIGKILL it after that many acknowledgements."""
    proc = subprocess.Popen(
        [sys.executable, str(SUPPORT / "economy_load.py"), str(data_dir), str(run)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("ready "), "the load did not start"
        seen = 0
        while seen < acks_before_kill:
            line = proc.stdout.readline()
            assert line, "the load exited early"
            seen += printed.take(line)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        for line in proc.stdout:
            if line.endswith("\n"):
                printed.take(line)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


@dataclass(frozen=True)
class Entry:
    user: int
    transfer_id: str
    amount: int
    counterparty: str
    reason: str


async def recover(data_dir: Path) -> list[Entry]:
    """Restart on the killed store, deliver what is in flight, check it, read history."""
    async with running_economy(data_dir) as eco:
        await eco.economy.deliver_pending()
        report = eco.check()
        assert report.ok, report.text()
        assert report.figures["outbox_records"] == 0, report.text()
        assert report.figures["user_coins"] == USERS * START, report.text()
        entries = []
        with eco.store.read() as txn:
            for key, value in txn.cursor(db=eco.store.db("history")):
                _, user = keys.split_wallet_key(key[:16])
                entry = HISTORY.decode(value)
                entries.append(
                    Entry(user, entry.transfer_id, entry.amount, entry.counterparty, entry.reason)
                )
        return entries


@pytest.mark.slow
def test_acknowledged_payments_survive_repeated_sigkill(tmp_path: Path) -> None:
    """Across several SIGKILLs under load, every acknowledged payment is in the store once,
    every debit was asked for, each one reached its receiver or came back, and money sums
    to zero."""
    rng = random.Random(20_261_125)
    printed = Printed(set(), {})
    for run in range(CYCLES):
        run_and_kill(tmp_path, run, rng.randint(100, 1_200), printed)
    entries = trio.run(recover, tmp_path)

    payments = [e for e in entries if e.transfer_id.startswith("pay:")]
    debits = {e.transfer_id: e for e in payments if e.amount < 0}
    credits = {e.transfer_id: e for e in payments if e.amount > 0}
    sides = Counter((e.transfer_id, e.amount < 0) for e in payments)
    assert max(sides.values()) == 1, "a payment was applied twice on one side"

    assert {d.reason for d in debits.values()} <= printed.tried, "a debit nobody asked for"
    in_flight = len(debits) - len(printed.acked)
    assert 0 <= in_flight <= PAYERS * CYCLES, (len(debits), len(printed.acked))
    for transfer_id, debit in debits.items():
        refund = credits.get(f"{transfer_id}/refund")
        credit = credits.get(transfer_id)
        assert (credit is None) != (refund is None), f"{transfer_id}: {credit} {refund}"
        landed = credit or refund
        owner = debit.user if refund else int(debit.counterparty.removeprefix("user:"))
        assert landed is not None and landed.amount == -debit.amount, (debit, landed)
        assert landed.user == owner, (debit, landed)

    for key, ack in printed.acked.items():
        acked = debits.get(ack.transfer_id)
        assert acked is not None, f"acknowledged payment {key} is not in the store"
        assert (acked.user, acked.amount, acked.reason) == (ack.user, -ack.amount, key)
        assert acked.counterparty == user_account(ack.to)
        assert ack.status in ("credited", "returned"), ack
        receiver = ack.to if ack.status == "credited" else ack.user
        suffix = "" if ack.status == "credited" else "/refund"
        assert credits[ack.transfer_id + suffix].user == receiver, ack
    statuses = Counter(ack.status for ack in printed.acked.values())
    assert statuses["credited"] and statuses["returned"], statuses
