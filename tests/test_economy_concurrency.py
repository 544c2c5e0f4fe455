"""Economy under concurrency: hot wallets lose no update, repeats of a burst move nothing."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import trio

from actors import Economy, ScopeSettings
from actors.errors import CroupierError, InsufficientFunds
from actors.wallet import PayResult
from limits import Limits
from tests.economy_fixtures import running_economy

G = 1
ADMIN = 99
START = ScopeSettings().starting_balance
# Thousands of asks queue behind a few wallets' mailboxes; none may give up on the way.
LIMITS = Limits(ask_seconds_default=120.0)


async def pay_all(
    economy: Economy, pays: list[tuple[int, int, int, str]]
) -> list[PayResult | CroupierError]:
    """Start every payment at once; each one's outcome or typed refusal, in order."""
    results: list[PayResult | CroupierError | None] = [None] * len(pays)

    async def one(index: int, user: int, to: int, amount: int, key: str) -> None:
        try:
            results[index] = await economy.pay(G, user, to, amount, key)
        except CroupierError as exc:
            results[index] = exc

    async with trio.open_nursery() as nursery:
        for index, pay in enumerate(pays):
            nursery.start_soon(one, index, *pay)
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


async def test_concurrent_transfers_among_hot_wallets_conserve_money(tmp_path: Path) -> None:
    """1,000 concurrent transfers among 10 wallets: each wallet ends at its start plus the
    credits minus the debits of the transfers that succeeded, and no coin appears or goes."""
    rng = random.Random(7)
    users = list(range(1, 11))
    pays = []
    for index in range(1_000):
        user, to = rng.sample(users, 2)
        pays.append((user, to, rng.randint(1, 60), f"t{index}"))
    async with running_economy(tmp_path, limits=LIMITS) as eco:
        for user in users:
            await eco.economy.balance(G, user)
        results = await pay_all(eco.economy, pays)
        expected = dict.fromkeys(users, START)
        for (user, to, amount, _), result in zip(pays, results, strict=True):
            if isinstance(result, PayResult):
                assert result.status == "credited", result
                expected[user] -= amount
                expected[to] += amount
            else:
                assert isinstance(result, InsufficientFunds), result
        refused = sum(isinstance(r, CroupierError) for r in results)
        assert 0 < refused < len(pays), "the amounts should make some transfers fail"
        balances = {user: (await eco.economy.balance(G, user)).balance for user in users}
        assert balances == expected
        assert sum(balances.values()) == START * len(users)
        report = eco.check()
        assert report.ok, report.text()
        assert report.figures["outbox_records"] == 0


async def test_ten_thousand_concurrent_deposits_into_one_wallet_all_count_once(
    tmp_path: Path,
) -> None:
    """10,000 concurrent payments into one wallet from 100 senders all land, none twice;
    the same 10,000 requests again answer the same and move nothing."""
    receiver = 1_000
    senders = range(1, 101)
    pays = [(s, receiver, 1, f"d{s}:{i}") for s in senders for i in range(START)]
    async with running_economy(tmp_path, limits=LIMITS) as eco:
        for user in [*senders, receiver]:
            await eco.economy.balance(G, user)
        first = await pay_all(eco.economy, pays)
        assert all(isinstance(r, PayResult) and r.status == "credited" for r in first)
        assert (await eco.economy.balance(G, receiver)).balance == START + len(pays)
        again = await pay_all(eco.economy, pays)
        assert again == first
        assert (await eco.economy.balance(G, receiver)).balance == START + len(pays)
        for sender in senders:
            assert (await eco.economy.balance(G, sender)).balance == 0
        history = eco.economy.history(G, receiver)
        credits = Counter[str]()
        for page in range(1, history.pages + 1):
            for entry in eco.economy.history(G, receiver, page).entries:
                credits[entry.transfer_id] += 1
        assert len(credits) == len(pays) + 1, "each payment credited, plus the opening"
        assert set(credits.values()) == {1}
        report = eco.check()
        assert report.ok, report.text()


async def test_simultaneous_repeats_of_one_payment_all_answer_credited(tmp_path: Path) -> None:
    """The same payment sent 50 times at once (a client retrying in a hurry): the credits
    meet in the receiver's mailbox, money moves once and every repeat answers "credited"
    with the same transfer."""
    async with running_economy(tmp_path, limits=LIMITS) as eco:
        for user in (1, 2):
            await eco.economy.balance(G, user)
        results = await pay_all(eco.economy, [(1, 2, 7, "same-key")] * 50)
        assert all(isinstance(r, PayResult) for r in results), results
        assert {(r.transfer_id, r.status, r.balance) for r in results} == {  # type: ignore[union-attr]
            (results[0].transfer_id, "credited", START - 7)  # type: ignore[union-attr]
        }
        assert (await eco.economy.balance(G, 2)).balance == START + 7
