"""The server's periodic jobs: on schedule, a failed run does not end the loop, and the
money supply they publish is what the wallets hold."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from bot.periodic import every, publish_money_supply
from tests.conftest import sample
from tests.economy_fixtures import running_economy

SUPPLY = "croupier_economy_money_supply_coins"


async def test_a_periodic_job_runs_on_schedule_and_outlives_a_failure(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    runs: list[float] = []

    async def job() -> None:
        runs.append(trio.current_time())
        if len(runs) == 2:
            raise RuntimeError("this run fails")

    start = trio.current_time()
    with trio.move_on_after(35):
        await every(10, job, "the job failed")
    assert [round(t - start) for t in runs] == [10, 20, 30]
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == ["the job failed"]


async def test_the_money_supply_gauge_is_what_each_scopes_wallets_hold(tmp_path: Path) -> None:
    """Per scope, the published supply is the coins its wallets hold after openings,
    a reward and a payment."""
    async with running_economy(tmp_path) as eco:
        economy = eco.economy
        await economy.reward(1, 10, "daily", "daily-1")
        await economy.pay(1, 10, 11, 5, "pay-1")
        await economy.balance(2, 20)
        publish_money_supply(economy, eco.metrics)
        held = {
            1: (await economy.balance(1, 10)).balance + (await economy.balance(1, 11)).balance,
            2: (await economy.balance(2, 20)).balance,
        }
        assert economy.money_supply() == held
        for scope, coins in held.items():
            assert sample(eco.metrics, SUPPLY, scope=str(scope)) == coins
