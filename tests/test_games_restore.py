"""Restore after kill -9: young games resume exactly as acknowledged, old ones are refunded."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import trio

from actors import ScopeSettings
from actors.games import GAME, LIVE, REFUNDED, GameRecord, view_of
from tests.conftest import sample
from tests.economy_fixtures import T0, RunningGames, WallClock, running_games
from tests.support.games_load import CATEGORIES, IDLE_SECONDS, PLAYERS, G

REPO = Path(__file__).resolve().parent.parent
START = ScopeSettings().starting_balance
RECOVERY_SECONDS = 7200.0
OLD_AT = T0
# The young batch plays a little over the recovery window after the old one, and the
# server restarts a minute later: the old games are then past the window, the young ones
# well inside it and inside their idle deadlines.
YOUNG_AT = OLD_AT + RECOVERY_SECONDS + 300
RESTART_AT = YOUNG_AT + 60
# How long the child may take to acknowledge every game before the test gives up.
LOAD_SECONDS_MAX = 60


@dataclasses.dataclass(frozen=True)
class Acked:
    batch: str
    category: str
    record: GameRecord


async def run_load_and_kill(data_dir: Path) -> dict[str, Acked]:
    """Run the load in a child process, SIGKILL it once it is done, and return the last
    acknowledged record of every game it printed."""
    command = [sys.executable, "-m", "tests.support.games_load", str(data_dir)]
    command += [str(OLD_AT), str(YOUNG_AT)]
    acked: dict[str, Acked] = {}
    process = await trio.lowlevel.open_process(command, cwd=REPO, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        buffer, done = b"", False
        with trio.fail_after(LOAD_SECONDS_MAX):
            while not done:
                chunk = await process.stdout.receive_some()
                assert chunk, f"the load exited early with {await process.wait()}"
                *lines, buffer = (buffer + chunk).split(b"\n")
                for line in lines:
                    done = line == b"done"
                    if not done:
                        fields = json.loads(line)
                        record = GAME.decode(bytes.fromhex(fields["record"]))
                        acked[record.game_id] = Acked(fields["batch"], fields["category"], record)
        process.send_signal(signal.SIGKILL)
        assert await process.wait() == -signal.SIGKILL
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return acked


def expected_after_restart(acked: Acked) -> GameRecord:
    """What the store must hold for an acknowledged game once recovery has run."""
    record = acked.record
    if acked.batch == "old" and record.phase == LIVE:
        refunded = dataclasses.replace(record, phase=REFUNDED, escrow=0)
        refunded.extra = {**record.extra, "refund_reason": "expired"}
        return refunded
    return record


def net_coins(record: GameRecord) -> int:
    """What a game has taken from (negative) or given to its player so far."""
    if record.phase == REFUNDED:
        return 0
    payout = record.outcome["payout"] if record.outcome is not None else 0
    return payout - record.staked


async def balances_match(casino: RunningGames, users: dict[int, list[str]]) -> None:
    """Every wallet holds its starting balance plus what its games gave or took."""
    for user, game_ids in users.items():
        records = [casino.games.load(game_id) for game_id in game_ids]
        assert None not in records, user
        expected = START + sum(net_coins(r) for r in records if r is not None)
        assert (await casino.economy.balance(G, user)).balance == expected, user


async def stand_until_settled(casino: RunningGames, record: GameRecord) -> None:
    """Play a resumed game to its end: it takes moves where it left off."""
    view = await casino.games.show(record.game_id, record.user)
    while view.phase == LIVE:
        key = f"restored-{view.step}"
        view = await casino.games.move(view.game_id, record.user, "stand", view.step, key)
    await casino.games.rotate_seeds(G, record.user, "after the restart", f"reveal-{view.game_id}")
    assert casino.games.verify(record.game_id).matches


@pytest.mark.slow
async def test_games_resume_or_refund_after_sigkill(tmp_path: Path) -> None:
    """After kill -9, young games resume identically and old ones are refunded once."""
    acked = await run_load_and_kill(tmp_path)
    by_phase = Counter((a.batch, a.category, a.record.phase) for a in acked.values())
    for batch in ("old", "young"):
        for category, (_, phase) in CATEGORIES.items():
            assert by_phase[(batch, category, phase)] > 0, (batch, category)
    assert sum(1 for a in acked.values() if a.record.kind == "blackjack") == PLAYERS
    old_live = {i for i, a in acked.items() if a.batch == "old" and a.record.phase == LIVE}
    young_live = {i for i, a in acked.items() if a.batch == "young" and a.record.phase == LIVE}
    users: dict[int, list[str]] = defaultdict(list)
    for game_id, a in acked.items():
        users[a.record.user].append(game_id)

    clock = WallClock(RESTART_AT)
    async with running_games(
        tmp_path, clock=clock, idle_seconds=IDLE_SECONDS, recovery_seconds=RECOVERY_SECONDS
    ) as casino:
        assert casino.recovery is not None
        assert (casino.recovery.resumed, casino.recovery.refunded) == (
            len(young_live),
            len(old_live),
        )
        report = casino.check()
        assert report.ok, report.text()
        assert report.figures["games_live"] == len(young_live)
        with casino.store.read() as txn:
            stored = {
                bytes(key).decode(): GAME.decode(value)
                for key, value in txn.cursor(db=casino.store.db("games"))
            }
        assert stored == {i: expected_after_restart(a) for i, a in acked.items()}
        for game_id in young_live:
            record = acked[game_id].record
            assert await casino.games.show(game_id, record.user) == view_of(record)
        await balances_match(casino, users)
        refunds = sample(
            casino.metrics, "croupier_games_refunded_total", kind="blackjack", reason="expired"
        )
        assert refunds == len(old_live)

        again = await casino.games.recover()
        assert (again.resumed, again.refunded) == (len(young_live), 0)
        async with trio.open_nursery() as nursery:
            for game_id in young_live:
                nursery.start_soon(stand_until_settled, casino, acked[game_id].record)
        await balances_match(casino, users)
        report = casino.check()
        assert report.ok, report.text()
        assert report.figures["games_live"] == 0 and report.figures["escrow_coins"] == 0
