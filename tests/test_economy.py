"""Economy: wallets, rewards, payments, admin tools, history, leaderboard, shop, settings."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from actors import ScopeSettings, keys
from actors.errors import (
    BalanceTooHigh,
    BotRecipient,
    DuplicateItem,
    GuildOnly,
    InsufficientFunds,
    InvalidAmount,
    InvalidInput,
    ItemRetired,
    KeyReused,
    NotEnoughItems,
    NotFound,
    NotSellable,
    OnCooldown,
    OutOfStock,
    SelfTransfer,
)
from actors.records import IDEMPOTENCY, IdempotencyRecord
from actors.wallet import Pay
from bot.periodic import prune_idempotency_once
from limits import Limits
from tests.conftest import sample
from tests.economy_fixtures import Running, running_economy

G = 1  # the guild used by most tests
START = ScopeSettings().starting_balance


@pytest.fixture
async def eco(tmp_path: Path, limits: Limits) -> AsyncIterator[Running]:
    async with running_economy(tmp_path, limits=limits) as running:
        yield running


async def test_new_wallet_opens_with_the_starting_balance_from_the_treasury(eco: Running) -> None:
    """A first contact creates the wallet, paid by the treasury; money sums to zero."""
    view = await eco.economy.balance(G, 42)
    assert view.balance == START
    report = eco.check()
    assert report.ok, report.text()
    assert report.figures["treasury_coins"] == -START


async def test_daily_has_a_cooldown_that_says_when(eco: Running) -> None:
    """Daily pays once, then refuses until the cooldown passes, naming the time."""
    first = await eco.economy.reward(G, 42, "daily", "k1")
    assert first.amount == ScopeSettings().daily_amount
    assert first.balance == START + first.amount
    assert first.next_ready_at == eco.clock.now + 86_400
    with pytest.raises(OnCooldown) as caught:
        await eco.economy.reward(G, 42, "daily", "k2")
    assert caught.value.ready_at == first.next_ready_at
    assert "try again in 24 h" in str(caught.value)
    eco.clock.advance(86_400)
    second = await eco.economy.reward(G, 42, "daily", "k3")
    assert second.balance == START + 2 * first.amount


async def test_repeating_a_key_returns_the_original_result_and_moves_nothing(eco: Running) -> None:
    """The same idempotency key twice pays once and answers the same."""
    first = await eco.economy.reward(G, 42, "work", "same")
    again = await eco.economy.reward(G, 42, "work", "same")
    assert again == first
    assert (await eco.economy.balance(G, 42)).balance == START + first.amount
    s = ScopeSettings()
    assert s.work_min <= first.amount <= s.work_max
    with pytest.raises(KeyReused):
        await eco.economy.pay(G, 42, 43, 1, "same")


async def test_pay_moves_money_exactly_once(eco: Running) -> None:
    """A payment debits the sender, credits the receiver; a repeat changes nothing."""
    outcome = await eco.economy.pay(G, 42, 43, 30, "p1", reason="lunch")
    assert outcome.status == "credited"
    assert outcome.balance == START - 30
    repeat = await eco.economy.pay(G, 42, 43, 30, "p1", reason="lunch")
    assert repeat == outcome
    assert (await eco.economy.balance(G, 43)).balance == START + 30
    assert (await eco.economy.balance(G, 42)).balance == START - 30
    assert eco.check().ok


@pytest.mark.parametrize("amount", [0, -5, True, 2.5, "10"])
async def test_pay_refuses_invalid_amounts(eco: Running, amount: object) -> None:
    """Only positive whole numbers are amounts."""
    with pytest.raises(InvalidAmount):
        await eco.economy.pay(G, 42, 43, amount, "bad")  # type: ignore[arg-type]


async def test_pay_refuses_self_bots_and_overdrafts(eco: Running) -> None:
    """Paying yourself, a bot, or more than you have are clear typed errors."""
    with pytest.raises(SelfTransfer):
        await eco.economy.pay(G, 42, 42, 1, "a")
    with pytest.raises(BotRecipient):
        await eco.economy.pay(G, 42, 99, 1, "b", to_is_bot=True)
    with pytest.raises(InsufficientFunds) as caught:
        await eco.economy.pay(G, 42, 43, START + 1, "c")
    assert (caught.value.balance, caught.value.amount) == (START, START + 1)
    assert eco.check().ok


async def test_payment_to_a_full_wallet_comes_back(eco: Running) -> None:
    """A recipient at the maximum balance makes the money return to the sender."""
    await eco.economy.update_settings(G, {"max_balance": 1_000, "bet_max": 1_000})
    await eco.economy.adjust(G, 1, 43, "set", 1_000, "fill", reason="test")
    outcome = await eco.economy.pay(G, 42, 43, 10, "p")
    assert outcome.status == "returned"
    assert outcome.balance == START
    assert (await eco.economy.balance(G, 43)).balance == 1_000
    again = await eco.economy.pay(G, 42, 43, 10, "p")
    assert again.status == "returned" and again.balance == START
    report = eco.check()
    assert report.ok and report.figures["outbox_records"] == 0, report.text()


async def test_undelivered_payments_are_delivered_at_start(tmp_path: Path) -> None:
    """A debit whose delivery never ran is delivered by the boot sweep."""
    async with running_economy(tmp_path) as eco:
        await eco.economy.balance(G, 43)
        debit = await eco.economy.wallet(G, 42).ask(Pay("k", 43, 25, "half-done"))
        report = eco.check()
        assert report.ok and report.figures["outbox_coins"] == 25
    async with running_economy(tmp_path) as eco:
        assert await eco.economy.deliver_pending() == 1
        assert (await eco.economy.balance(G, 43)).balance == START + 25
        assert (await eco.economy.balance(G, 42)).balance == START - 25
        outcome = await eco.economy.pay(G, 42, 43, 25, "k", reason="half-done")
        assert outcome.transfer_id == debit.transfer_id and outcome.status == "credited"
        assert eco.check().ok


async def test_answers_stored_before_ops_were_named_still_answer_a_repeat(tmp_path: Path) -> None:
    """A /pay and a /work answered by an earlier version (results keyed by the class name,
    a payment's without a status) are answered the same when redelivered after a restart,
    and move nothing again; the same keys for another operation are still refused."""
    async with running_economy(tmp_path) as eco:
        paid = await eco.economy.pay(G, 42, 43, 25, "old-pay", reason="rent")
        worked = await eco.economy.reward(G, 42, "work", "old-work")
        old_pay = {
            "transfer_id": paid.transfer_id,
            "to_user": 43,
            "amount": 25,
            "balance": paid.balance,
        }
        old_work = {
            "kind": "work",
            "amount": worked.amount,
            "balance": worked.balance,
            "next_ready_at": worked.next_ready_at,
        }
        at = eco.clock.now

        def rewrite(txn: Any) -> None:
            db = eco.store.db("idempotency")
            for key, op, result in (("old-pay", "Pay", old_pay), ("old-work", "Reward", old_work)):
                old = IdempotencyRecord(op=op, result=result, at=at)
                txn.put(keys.idempotency_key(G, 42, key), IDEMPOTENCY.encode(old), db=db)

        await eco.store.write(rewrite)
    async with running_economy(tmp_path) as eco:
        assert await eco.economy.pay(G, 42, 43, 25, "old-pay", reason="rent") == paid
        assert await eco.economy.reward(G, 42, "work", "old-work") == worked
        with pytest.raises(KeyReused):
            await eco.economy.reward(G, 42, "work", "old-pay")
        assert (await eco.economy.balance(G, 42)).balance == worked.balance
        assert (await eco.economy.balance(G, 43)).balance == START + 25
        assert eco.check().ok


async def test_admin_add_remove_set_and_reset(eco: Running) -> None:
    """Admin tools move money to and from the treasury with a reason in history."""
    assert (
        await eco.economy.adjust(G, 7, 42, "add", 50, "a1", reason="prize")
    ).balance == START + 50
    assert (
        await eco.economy.adjust(G, 7, 42, "remove", 20, "a2", reason="fine")
    ).balance == START + 30
    with pytest.raises(InsufficientFunds):
        await eco.economy.adjust(G, 7, 42, "remove", 10_000, "a3", reason="too much")
    assert (await eco.economy.adjust(G, 7, 42, "set", 5, "a4", reason="fix")).balance == 5
    with pytest.raises(BalanceTooHigh):
        await eco.economy.adjust(G, 7, 42, "add", 10**12, "a5", reason="x")
    await eco.economy.reward(G, 42, "daily", "d")
    reset = await eco.economy.reset(G, 7, 42, "r", reason="cheating")
    assert reset.balance == START
    assert (await eco.economy.reward(G, 42, "daily", "d2")).amount > 0, "cooldown cleared"
    history = eco.economy.history(G, 42)
    assert "reset by 7: cheating" in [e.reason for e in history.entries]
    assert eco.check().ok


async def test_history_is_newest_first_and_paginated(eco: Running) -> None:
    """History pages hold the newest transfers first with counterparty and reason."""
    for i in range(30):
        await eco.economy.pay(G, 42, 43, 1, f"h{i}", reason=f"r{i}")
    page1 = eco.economy.history(G, 42, 1)
    assert page1.pages == 2
    assert [e.reason for e in page1.entries[:3]] == ["r29", "r28", "r27"]
    assert all(e.amount == -1 and e.counterparty == "user:43" for e in page1.entries)
    page2 = eco.economy.history(G, 42, 2)
    assert page2.entries[-1].reason == "opening balance"
    assert len(page1.entries) + len(page2.entries) == 31
    assert eco.economy.history(G, 42, 99).page == 2


async def test_leaderboard_follows_balances(eco: Running) -> None:
    """The leaderboard index orders by balance and moves as balances change."""
    for user in range(1, 31):
        await eco.economy.adjust(G, 7, user, "set", user * 10, f"s{user}", reason="seed")
    top = eco.economy.leaderboard(G, 1)
    assert [(r.rank, r.user, r.balance) for r in top.rows[:2]] == [(1, 30, 300), (2, 29, 290)]
    assert top.has_next
    await eco.economy.pay(G, 1, 2, 10, "up")
    second = eco.economy.leaderboard(G, 2)
    # Ties order by user id: users 2 and 3 both hold 30 now.
    assert [(r.user, r.balance) for r in second.rows] == [
        (5, 50),
        (4, 40),
        (2, 30),
        (3, 30),
        (1, 0),
    ]
    assert not second.has_next
    with pytest.raises(InvalidInput):
        eco.economy.leaderboard(G, 0)
    assert eco.check().ok


async def test_scopes_are_separate_and_dms_are_refused(tmp_path: Path) -> None:
    """Each guild has its own wallets; a guild-less command is refused in guild mode."""
    async with running_economy(tmp_path / "g") as eco:
        await eco.economy.pay(1, 42, 43, 10, "x")
        assert (await eco.economy.balance(2, 42)).balance == START
        with pytest.raises(GuildOnly):
            await eco.economy.balance(0, 42)
    async with running_economy(tmp_path / "w", global_scope=True) as eco:
        await eco.economy.pay(1, 42, 43, 10, "x")
        assert (await eco.economy.balance(2, 42)).balance == START - 10
        assert (await eco.economy.balance(0, 42)).balance == START - 10


async def test_shop_buy_sell_use_and_retire(eco: Running) -> None:
    """Buying moves money and stock in one step; retired items stay readable."""
    badge = await eco.economy.create_item(
        G, name="Badge", price=30, stock=2, role_id=555, sell_price=10
    )
    with pytest.raises(DuplicateItem):
        await eco.economy.create_item(G, name="badge", price=1)
    # A repeated request (same key) answers with the item it created, even after edits;
    # another request with that name is still a duplicate.
    pin = await eco.economy.create_item(G, name="Pin", price=3, key="k-pin")
    await eco.economy.edit_item(G, pin.item_id, price=4)
    again = await eco.economy.create_item(G, name="Pin", price=3, key="k-pin")
    assert (again.item_id, again.price) == (pin.item_id, 4)
    with pytest.raises(DuplicateItem):
        await eco.economy.create_item(G, name="Pin", price=3, key="k-other")
    assert [item.name for item in eco.economy.items(G)] == ["Badge", "Pin"]
    bought = await eco.economy.buy(G, 42, badge.item_id, 2, "b1")
    assert (bought.total, bought.balance, bought.owned) == (60, START - 60, 2)
    assert await eco.economy.buy(G, 42, badge.item_id, 2, "b1") == bought
    with pytest.raises(OutOfStock):
        await eco.economy.buy(G, 43, badge.item_id, 1, "b2")
    used = await eco.economy.use(G, 42, badge.item_id, "u1")
    assert (used.role_id, used.remaining) == (555, 1)
    await eco.economy.retire_item(G, badge.item_id)
    with pytest.raises(ItemRetired):
        await eco.economy.buy(G, 42, badge.item_id, 1, "b3")
    assert [(line.item.name, line.count) for line in eco.economy.inventory(G, 42)] == [("Badge", 1)]
    sold = await eco.economy.sell(G, 42, badge.item_id, 1, "s1")
    assert (sold.total, sold.balance, sold.owned) == (10, START - 50, 0)
    with pytest.raises(NotEnoughItems):
        await eco.economy.sell(G, 42, badge.item_id, 1, "s2")
    assert eco.economy.find_item(G, "BADGE").stock == 1
    plain = await eco.economy.create_item(G, name="Cake", price=5)
    await eco.economy.buy(G, 42, plain.item_id, 1, "b4")
    with pytest.raises(NotSellable):
        await eco.economy.sell(G, 42, plain.item_id, 1, "s3")
    with pytest.raises(InsufficientFunds):
        await eco.economy.buy(G, 43, plain.item_id, 1000, "b5")
    with pytest.raises(NotFound):
        await eco.economy.buy(G, 42, 999, 1, "b6")
    report = eco.check()
    assert report.ok, report.text()
    assert report.figures["shop_coins"] == 60 - 10 + 5


async def test_settings_are_validated_as_a_whole(eco: Running) -> None:
    """Bad settings are refused naming the field; good ones apply to new wallets."""
    with pytest.raises(InvalidInput, match="daily_amount"):
        await eco.economy.update_settings(G, {"daily_amount": -1})
    with pytest.raises(InvalidInput, match="colour"):
        await eco.economy.update_settings(G, {"colour": "red"})
    with pytest.raises(InvalidInput, match="currency_name"):
        await eco.economy.update_settings(G, {"currency_name": 5})
    updated = await eco.economy.update_settings(G, {"starting_balance": 7, "currency_name": "gems"})
    assert (updated.starting_balance, updated.currency_name) == (7, "gems")
    assert (await eco.economy.balance(G, 500)).balance == 7
    assert eco.economy.settings(2).starting_balance == START


async def test_concurrent_deliveries_do_not_pin_reader_slots(eco: Running) -> None:
    """500 concurrent payments (each awaiting across reads) never exhaust LMDB readers."""
    for sender in range(1, 51):
        await eco.economy.balance(G, sender)

    async def pay(i: int) -> None:
        await eco.economy.pay(G, 1 + i % 50, 1_000, 1, f"r{i}")

    async with trio.open_nursery() as nursery:
        for i in range(500):
            nursery.start_soon(pay, i)
    assert eco.store.env.info()["num_readers"] < 16
    assert (await eco.economy.balance(G, 1_000)).balance == START + 500


async def test_item_names_must_be_findable(eco: Running) -> None:
    """A name of only digits would read as an id, so it is refused; edits trim names."""
    with pytest.raises(InvalidInput, match="digits"):
        await eco.economy.create_item(G, name="2024", price=1)
    item = await eco.economy.create_item(G, name="Hat", price=1)
    edited = await eco.economy.edit_item(G, item.item_id, name="  Cap  ")
    assert edited.name == "Cap" and eco.economy.find_item(G, "cap").item_id == item.item_id


async def test_refusals_and_idle_wallets_leave_no_garbage_cycles(eco: Running) -> None:
    """Refused requests and idle wallets leave nothing for the cycle collector: its
    pauses grow with what it must walk, and under load they were the latency tails."""
    for user in (1, 2):
        await eco.economy.balance(G, user)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for attempt in range(50):
            with pytest.raises(InsufficientFunds):
                await eco.economy.pay(G, 1, 2, 10 * START, f"too-much-{attempt}")
            await eco.economy.pay(G, 1, 2, 1, f"ok-{attempt}")
        gc.collect()
        ours = [o for o in gc.garbage if type(o).__module__.startswith("actors.")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert ours == []


# The search for old results reads a few records per transaction: many transactions here,
# and more wallets than are pruned at once.
@pytest.mark.parametrize(
    "limits", [Limits(prune_scan_records_per_read_max=7, prune_wallets_concurrent_max=4)]
)
async def test_stored_results_are_forgotten_after_the_retention(eco: Running) -> None:
    """Results older than the retention are pruned by their own wallets (counted, and only
    those); a recent key still replays, and the store stays whole."""
    retention = eco.economy.limits.idempotency_retention_seconds
    first = await eco.economy.pay(G, 1, 2, 5, "old-pay")
    # More wallets than are pruned at once.
    for user in range(10, 50):
        await eco.economy.reward(G, user, "daily", f"old-daily-{user}")
    eco.clock.advance(retention / 2)
    recent = await eco.economy.pay(G, 1, 2, 7, "recent-pay")
    assert await eco.economy.prune_idempotency() == 0
    eco.clock.advance(retention / 2 + 1)
    # The server's pass: prunes, counts in the metric, logs.
    assert await prune_idempotency_once(eco.economy, eco.metrics) == 41
    assert sample(eco.metrics, "croupier_economy_idempotency_pruned_total") == 41
    assert await eco.economy.prune_idempotency() == 0
    # The recent key still answers with its first result and moves nothing.
    assert await eco.economy.pay(G, 1, 2, 7, "recent-pay") == recent
    # A forgotten key counts as a new request (keys are interaction ids, which Discord
    # never reuses, so only a broken client could send one this late): it pays again,
    # and the store stays whole.
    again = await eco.economy.pay(G, 1, 2, 5, "old-pay")
    assert again.transfer_id == first.transfer_id and again.balance == first.balance - 12
    report = eco.check()
    assert report.ok, report.text()
