"""A game or timer record that cannot be handled never stops boot or the timer loop: it
is refunded where it can be, otherwise parked, and counted either way."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from actors import AskTimeout, ParkedRecord, TimerRecord, keys, list_parked
from actors.errors import AlreadyRefunded
from actors.games import GAME, LIVE
from actors.timer_records import TIMER, put_timer
from storage import Store, open_store, packb, unpackb
from tests.conftest import sample
from tests.economy_fixtures import T0, WallClock, running_games

G, ALICE, BOB = 1, 42, 43
STAKE = 10
RECOVERY_SECONDS = 7200.0


async def start_game(data_dir: Path, user: int = ALICE, key: str = "b1") -> str:
    """A live blackjack game (redealt until nobody has a natural), left in the store."""
    async with running_games(data_dir, commit_in_thread=False, recover=False) as run:
        for attempt in range(50):
            view = await run.games.start_blackjack(G, user, STAKE, f"{key}-{attempt}")
            if view.phase == LIVE:
                return view.game_id
            run.clock.advance(10)  # type: ignore[attr-defined]
    raise AssertionError("no live deal in 50 tries")


async def tamper(data_dir: Path, db: str, key: bytes, value: bytes) -> None:
    """Write one raw record, with no timers or recovery running on the store."""
    async with open_store(data_dir, commit_in_thread=False) as store:
        await store.write(lambda txn: txn.put(key, value, db=store.db(db)))


def game_value(data_dir_run: Any, game_id: str) -> bytes:
    with data_dir_run.store.read() as txn:
        raw = txn.get(keys.game_key(game_id), db=data_dir_run.store.db("games"))
    assert raw is not None
    return bytes(raw)


def parked_games(store: Store) -> list[ParkedRecord]:
    return list_parked(store, "game")


async def test_an_old_game_whose_state_breaks_its_actor_is_refunded_and_boot_goes_on(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Recovery's refund of an old game whose actor cannot activate raises; the game is
    refunded by its escalation instead, counted, and boot finishes."""
    game_id = await start_game(tmp_path)
    async with running_games(tmp_path, commit_in_thread=False, recover=False) as run:
        record = GAME.decode(game_value(run, game_id))
        # Deals redealt before this one may have settled and moved money already.
        refunded = (await run.economy.balance(G, ALICE)).balance + STAKE
    broken = dataclasses.replace(record, state={"broken": True})
    await tamper(tmp_path, "games", keys.game_key(game_id), GAME.encode(broken))
    later = WallClock(T0 + RECOVERY_SECONDS + 60)
    async with running_games(
        tmp_path, clock=later, commit_in_thread=False, recovery_seconds=RECOVERY_SECONDS
    ) as run:
        assert run.recovery is not None and run.recovery.resumed == 0
        assert sample(run.metrics, "croupier_supervisor_escalations_total", kind="game") == 1
        assert (await run.economy.balance(G, ALICE)).balance == refunded
        assert GAME.decode(game_value(run, game_id)).phase == "refunded"
        report = run.check()
        assert report.ok, report.text()


async def test_an_unreadable_live_index_entry_is_parked(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """An index entry that is not a (game id, time) pair is parked at boot and counted;
    the other live games are recovered as usual and the store checks clean."""
    game_id = await start_game(tmp_path)
    bad_key = keys.live_game_key(G, BOB, "blackjack")
    await tamper(tmp_path, "live_games", bad_key, b"\xc1")
    async with running_games(tmp_path, commit_in_thread=False) as run:
        assert run.recovery is not None and run.recovery.resumed == 1
        [parked] = parked_games(run.store)
        assert (parked.source_db, parked.source_key, parked.value) == (
            "live_games",
            bad_key,
            b"\xc1",
        )
        assert sample(run.metrics, "croupier_games_recovery_failures_total") == 1
        assert sample(run.metrics, "croupier_parked_records_total", kind="game") == 1
        assert run.recovery.parked == 1
        view = await run.games.show(game_id, ALICE)
        assert view.phase == LIVE
        report = run.check()
        assert report.ok, report.text()
        assert report.figures["parked_games"] == 1


async def test_an_old_game_with_an_unreadable_record_is_parked_with_its_timer(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A live game whose record is not a record: boot goes on, the game's records (its
    bytes, index entry and deadline timer) move to parked, and it is counted once. Its
    stake cannot be read, so the check names the missing coins instead of hiding them."""
    game_id = await start_game(tmp_path)
    await tamper(tmp_path, "games", keys.game_key(game_id), b"\x92\x01")
    later = WallClock(T0 + RECOVERY_SECONDS + 60)
    async with running_games(
        tmp_path, clock=later, commit_in_thread=False, recovery_seconds=RECOVERY_SECONDS
    ) as run:
        [parked] = parked_games(run.store)
        assert (parked.ident, parked.source_db, parked.value) == (game_id, "games", b"\x92\x01")
        assert sample(run.metrics, "croupier_games_recovery_failures_total") == 1
        with run.store.read() as txn:
            assert txn.get(keys.game_key(game_id), db=run.store.db("games")) is None
            for name in ("live_games", "timers"):
                assert txn.stat(run.store.db(name))["entries"] == 0, name
        report = run.check()
        assert report.counts["money_sums_to_zero"] == 1, report.text()
        # The player plays on: a new game starts.
        view = await run.games.start_blackjack(G, ALICE, STAKE, "after")
        assert view.game_id != game_id


async def test_bad_timer_records_are_parked_and_the_loop_goes_on(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """An unreadable timer and one of a kind nobody handles are parked (the second after
    its retries); a live game's deadline still fires and settles it."""
    game_id = await start_game(tmp_path)
    unreadable = keys.timer_key(T0 - 10, "junk")
    unknown = keys.timer_key(T0 - 5, "nope")
    await tamper(tmp_path, "timers", unreadable, packb([1, 2]))
    await tamper(tmp_path, "timers", unknown, TIMER.encode(TimerRecord("nope", "x", T0 - 5)))
    clock = WallClock(T0)
    async with running_games(tmp_path, clock=clock, commit_in_thread=False) as run:
        # The scheduler retries on the wall clock, which this test moves by hand.
        with trio.fail_after(3_600):
            while run.timers.parked < 2:
                clock.advance(30)
                run.timers.kick()
                await trio.sleep(1)
        assert (await run.games.show(game_id, ALICE)).phase == LIVE
        parked = list_parked(run.store, "timer")
        assert {p.source_key for p in parked} == {unreadable, unknown}
        assert sample(run.metrics, "croupier_timers_failures_total", kind="unknown") == 1 + 5
        assert sample(run.metrics, "croupier_parked_records_total", kind="timer") == 2
        clock.advance(3_600)
        run.timers.kick()
        with trio.fail_after(600):
            while (await run.games.show(game_id, ALICE)).phase == LIVE:
                await trio.sleep(1)
        report = run.check()
        assert report.ok, report.text()
        assert report.figures["parked_timers"] == 2


async def test_a_busy_timer_owner_is_retried_without_counting_a_failure(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A handler whose owner is busy (an ask timed out) is retried as long as it takes
    and never parked; one that raises is counted and parked after timer_attempts_max
    failures in a row."""
    clock = WallClock(T0)
    answers: list[str] = []

    async def toy(timer: TimerRecord) -> None:
        answers.append(timer.target)
        if timer.target == "busy" and len(answers) < 20:
            raise AskTimeout("wallet", 5.0)
        if timer.target == "broken":
            raise RuntimeError("the toy handler is broken")

    async with running_games(tmp_path, clock=clock, commit_in_thread=False) as run:
        run.timers.register("toy", toy)
        for target in ("busy", "broken"):
            record = TimerRecord("toy", target, T0 - 1)
            await run.store.write(lambda txn, r=record: put_timer(txn, run.store, r.target, r))
        with trio.fail_after(3_600):
            while run.timers.parked < 1 or answers.count("busy") < 12:
                clock.advance(30)
                run.timers.kick()
                await trio.sleep(1)
        [parked] = list_parked(run.store, "timer")
        assert parked.target == "broken" and parked.attempts == 5
        assert "the toy handler is broken" in parked.error
        assert sample(run.metrics, "croupier_timers_failures_total", kind="toy") == 5
        with run.store.read() as txn:
            [left] = [TIMER.decode(v) for _, v in txn.cursor(db=run.store.db("timers"))]
        assert left.target == "busy"


async def test_a_parked_game_keeps_its_stake_until_it_is_refunded_once(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A game whose refund raises in its actor (its record was written with its fields in
    another order, so the refund's compare-and-swap refuses it) is parked holding its
    stake; the check still sums to zero, and a refund returns the stake once."""
    game_id = await start_game(tmp_path)
    async with running_games(tmp_path, commit_in_thread=False, recover=False) as run:
        fields = unpackb(game_value(run, game_id))
        before = (await run.economy.balance(G, ALICE)).balance
    await tamper(tmp_path, "games", keys.game_key(game_id), packb(dict(reversed(fields.items()))))
    later = WallClock(T0 + RECOVERY_SECONDS + 60)
    async with running_games(
        tmp_path, clock=later, commit_in_thread=False, recovery_seconds=RECOVERY_SECONDS
    ) as run:
        [parked] = parked_games(run.store)
        assert (parked.ident, parked.amount, parked.owner) == (game_id, STAKE, f"user:{ALICE}")
        assert (await run.economy.balance(G, ALICE)).balance == before
        report = run.check()
        assert report.ok, report.text()
        result = await run.economy.refund_parked(game_id, by="operator")
        assert (result.user, result.amount, result.balance) == (ALICE, STAKE, before + STAKE)
        with pytest.raises(AlreadyRefunded):
            await run.economy.refund_parked(game_id, by="operator")
        report = run.check()
        assert report.ok, report.text()
        assert report.figures["parked_games"] == 0
