"""A wallet operation is a plain function: it reads and changes nothing it is given, and
a payment written with plan_pay, plan_credit and apply_plans (as the storage floor
benchmark writes one) leaves a store the integrity check passes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors import ScopeSettings, check_store
from actors.errors import InsufficientFunds, InvalidAmount
from actors.records import OUTBOX, WalletRecord
from actors.wallet import Credit, Pay
from actors.wallet_plans import (
    Delete,
    Put,
    WalletId,
    apply_plans,
    plan_credit,
    plan_open,
    plan_pay,
)
from storage import open_store

SETTINGS = ScopeSettings()
ALICE, BOB = WalletId(1, 42), WalletId(1, 43)
NOW = 1_700_000_000.0


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=1, max_value=10**6))
def test_plan_pay_changes_nothing_it_is_given(balance: int, amount: int) -> None:
    """The record passed in is the same after planning; the plan's record is debited, and
    the plan writes the history entry, the outbox record and the stored answer."""
    record = WalletRecord(balance=balance, created_at=NOW, history_seq=3)
    before = dataclasses.replace(record)
    message = Pay("k", BOB.user, amount, "rent")
    if amount > balance:
        with pytest.raises(InsufficientFunds):
            plan_pay(ALICE, record, message, SETTINGS, NOW)
        return
    plan = plan_pay(ALICE, record, message, SETTINGS, NOW)
    assert record == before
    assert plan.record.balance == balance - amount and plan.record.history_seq == 4
    assert {w.db for w in plan.writes if isinstance(w, Put)} == {"history", "outbox", "idempotency"}
    assert plan.result.balance == balance - amount and plan.result.status == "pending"
    assert plan.transfers == ("pay",)


def test_plan_pay_refuses_past_the_scopes_maximum() -> None:
    """An amount above max_balance is refused by the plan, which only the wallet can see."""
    record = WalletRecord(balance=SETTINGS.max_balance, created_at=NOW)
    with pytest.raises(InvalidAmount):
        plan_pay(ALICE, record, Pay("k", 43, SETTINGS.max_balance + 1, ""), SETTINGS, NOW)


async def test_a_payment_written_from_its_plans_passes_the_integrity_check(tmp_path: Path) -> None:
    """Open two wallets, pay, credit: three commits of plans, and the money sums to zero."""
    async with open_store(tmp_path / "data") as store:
        opened = {w: plan_open(w, SETTINGS, NOW) for w in (ALICE, BOB)}
        for wallet, plan in opened.items():
            await store.write(lambda txn, w=wallet, p=plan: apply_plans(txn, store, w, [p], -1))
        alice, bob = opened[ALICE].record, opened[BOB].record
        paid = plan_pay(ALICE, alice, Pay("k", BOB.user, 30, "rent"), SETTINGS, NOW)
        await store.write(lambda txn: apply_plans(txn, store, ALICE, [paid], alice.balance))
        with store.read() as txn:
            raw = txn.get(paid.result.transfer_id.encode(), db=store.db("outbox"))
        credit = Credit(paid.result.transfer_id)
        credited = plan_credit(BOB, bob, credit, SETTINGS, NOW, OUTBOX.decode(raw))
        assert Delete("outbox", paid.result.transfer_id.encode()) in credited.writes
        await store.write(lambda txn: apply_plans(txn, store, BOB, [credited], bob.balance))
        report = check_store(store)
        assert report.ok, report.text()
        assert report.figures["user_coins"] == 2 * SETTINGS.starting_balance
        assert credited.result.status == "credited" and credited.result.balance == bob.balance + 30
