"""Ids out of the snowflake range are refused by the economy before anything is written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors import ScopeSettings
from actors.accounts import member_of
from actors.errors import InvalidInput
from bot.commands import build_command_set
from limits import RateLimit
from tests.economy_fixtures import Running, running_economy, running_games
from tests.support.console_json import ask_json

G = 1
ALICE = 42
START = ScopeSettings().starting_balance
BAD_IDS = (-5, 0, 2**64, True, "43")


@pytest.fixture
async def eco(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_economy(tmp_path) as running:
        yield running


def store_state(eco: Running) -> dict[str, int]:
    """How many records each money sub-database holds."""
    names = ("wallets", "history", "outbox", "idempotency", "applied")
    with eco.store.read() as txn:
        return {name: txn.stat(eco.store.db(name))["entries"] for name in names}


@pytest.mark.parametrize("to_user", BAD_IDS)
async def test_pay_to_an_id_out_of_range_is_refused_before_the_debit(
    eco: Running, to_user: object
) -> None:
    """Paying -5, 0, 2**64 (or a bool or a string) is invalid_input naming the recipient;
    the sender keeps every coin and nothing is left in flight."""
    await eco.economy.balance(G, ALICE)
    before = store_state(eco)
    with pytest.raises(InvalidInput) as refused:
        await eco.economy.pay(G, ALICE, to_user, 1, "k1")  # type: ignore[arg-type]
    assert refused.value.code == "invalid_input" and refused.value.field == "to_user"
    assert store_state(eco) == before
    assert (await eco.economy.balance(G, ALICE)).balance == START
    report = eco.check()
    assert report.ok and report.figures["outbox_records"] == 0, report.text()


@pytest.mark.parametrize("user", (-5, 0, 2**64))
async def test_every_economy_call_refuses_a_user_id_out_of_range(eco: Running, user: int) -> None:
    """Balance, rewards, payments from, admin tools, shop and reads all refuse the id."""
    economy = eco.economy
    calls = [
        economy.balance(G, user),
        economy.reward(G, user, "daily", "k"),
        economy.pay(G, user, ALICE, 1, "k"),
        economy.adjust(G, ALICE, user, "add", 1, "k", reason="r"),
        economy.adjust(G, user, ALICE, "add", 1, "k", reason="r"),
        economy.reset(G, ALICE, user, "k", reason="r"),
        economy.buy(G, user, 1, 1, "k"),
        economy.sell(G, user, 1, 1, "k"),
        economy.use(G, user, 1, "k"),
    ]
    for call in calls:
        with pytest.raises(InvalidInput):
            await call
    with pytest.raises(InvalidInput):
        economy.history(G, user)
    with pytest.raises(InvalidInput):
        economy.inventory(G, user)
    assert store_state(eco)["wallets"] == 0


@pytest.mark.parametrize("guild", (-1, 2**64))
async def test_a_guild_id_out_of_range_is_refused(eco: Running, guild: int) -> None:
    """A guild id below 0 or past 2**64-1 is invalid_input naming the guild."""
    with pytest.raises(InvalidInput) as refused:
        await eco.economy.balance(guild, ALICE)
    assert refused.value.field == "guild"


async def test_games_refuse_a_player_id_out_of_range(tmp_path: Path) -> None:
    """Instant games, blackjack and moves refuse a player id out of range."""
    async with running_games(tmp_path) as run:
        with pytest.raises(InvalidInput):
            await run.games.play(G, -5, "coinflip", {"stake": 1, "side": "heads"}, "k1")
        with pytest.raises(InvalidInput):
            await run.games.start_blackjack(G, 2**64, 1, "k2")
        view = await run.games.start_blackjack(G, ALICE, 1, "k3")
        with pytest.raises(InvalidInput):
            await run.games.move(view.game_id, 0, "stand", view.step, "k4")
        report = run.check()
        assert report.ok, report.text()


@pytest.mark.parametrize("to_user", (-5, 0, 2**64))
async def test_console_pay_to_an_id_out_of_range_answers_invalid_input(
    eco: Running, to_user: int
) -> None:
    """The issue's line through the console's JSON protocol: refused, nothing in flight,
    and the store still delivers and checks clean."""
    commands = build_command_set(
        economy=eco.economy, metrics=eco.metrics, rate_limit=RateLimit(burst_commands=100)
    )
    (reply,) = await ask_json(
        commands, {"user": ALICE, "command": "pay", "options": {"user": to_user, "amount": 1}}
    )
    assert not reply["ok"] and reply["error"]["code"] == "invalid_input", reply
    assert await eco.economy.deliver_pending() == 0
    assert (await eco.economy.balance(G, ALICE)).balance == START
    report = eco.check()
    assert report.ok and report.figures["outbox_records"] == 0, report.text()


@given(st.integers(min_value=1, max_value=2**64 - 1))
def test_a_member_account_names_its_user(user: int) -> None:
    """Every valid id round-trips through its account name."""
    assert member_of(f"user:{user}") == user


@given(st.text(max_size=40))
def test_any_other_account_name_is_no_member(text: str) -> None:
    """Text that is not user:<1..2**64-1 in ASCII digits> is None, and never raises."""
    found = member_of(text)
    if found is not None:
        assert text == f"user:{found}" and 1 <= found <= 2**64 - 1


@pytest.mark.parametrize("name", ["user:0", "user:-5", f"user:{2**64}", "user:²", "game:1", ""])
def test_the_named_bad_accounts_are_no_members(name: str) -> None:
    """The issue's ids and a unicode digit name no member."""
    assert member_of(name) is None
