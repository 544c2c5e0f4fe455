"""Games: money flow, blackjack moves, limits, timeouts, restarts, refunds, verification."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import actors.games
from actors import RuntimeFailure, ScopeSettings
from actors.errors import (
    GameInProgress,
    GameOver,
    InsufficientFunds,
    InvalidInput,
    NotYourGame,
    OnCooldown,
)
from actors.games import GAME_ACTOR, fairness, rules
from actors.games.rules import blackjack as bj
from limits import Limits
from tests.conftest import sample
from tests.economy_fixtures import T0, RunningGames, running_games

REPO = Path(__file__).resolve().parent.parent
G = 1
START = ScopeSettings().starting_balance
CLIENT_SEED = "client-seed"


def seed_where(predicate: Callable[[bj.BlackjackState], bool], nonce: int) -> str:
    """The first deterministic server seed whose deal satisfies ``predicate``."""
    for i in range(100_000):
        seed = hashlib.sha256(f"seed-{i}".encode()).hexdigest()
        if predicate(bj.deal(seed, CLIENT_SEED, nonce, 10)):
            return seed
    raise AssertionError("no seed found")


@pytest.fixture
def fixed_seed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Make a player's first seed pair use a chosen server seed (found with ``seed_where``
    for nonce 0) and the client seed ``CLIENT_SEED``, so their first bet deals from it."""
    chosen: list[str] = []

    def use(seed: str) -> None:
        chosen.append(seed)

    original = rules.new_server_seed
    monkeypatch.setattr(rules, "new_server_seed", lambda: chosen[-1] if chosen else original())
    monkeypatch.setattr(fairness, "default_client_seed", lambda: CLIENT_SEED)
    yield use


async def reveal(casino: RunningGames, user: int = 42) -> None:
    """Rotate the player's seed pair, which reveals the server seed of their games so far."""
    await casino.games.rotate_seeds(G, user, "next pair", f"reveal-{user}")


@pytest.fixture
async def casino(tmp_path: Path) -> AsyncIterator[RunningGames]:
    async with running_games(tmp_path) as running:
        await running.economy.update_settings(G, {"game_cooldown_seconds": 0})
        yield running


def plain(state: bj.BlackjackState) -> bool:
    """A deal where nobody has a natural and the player has not split-able cards."""
    return not bj.is_settled(state) and bj.Action.SPLIT not in bj.legal_actions(state)


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("coinflip", {"choice": "heads"}),
        ("dice", {"bet": "number", "number": 3}),
        ("dice", {"bet": "over"}),
        ("slots", {}),
        ("roulette", {"bet": "straight", "number": 17}),
        ("roulette", {"bet": "red"}),
    ],
)
async def test_instant_games_settle_in_one_commit(
    casino: RunningGames, kind: str, params: dict[str, Any]
) -> None:
    """Stake out, payout in, house the difference; the game verifies from its seeds."""
    result = await casino.games.play(G, 42, kind, {**params, "stake": 10}, "1001")
    view = result.view
    assert view.phase == "settled" and view.outcome is not None
    assert result.balance == START - 10 + view.outcome["payout"]
    assert view.server_seed == "" and view.nonce == 0, "the active pair's seed stays secret"
    report = casino.check()
    assert report.ok, report.text()
    assert report.figures["house_coins"] == 10 - view.outcome["payout"]
    with pytest.raises(fairness.SeedNotRevealed):
        casino.games.verify(view.game_id)
    await reveal(casino)
    shown = await casino.games.show(view.game_id)
    assert rules.seed_hash(shown.server_seed) == view.seed_hash
    assert casino.games.verify(view.game_id).matches
    again = await casino.games.play(G, 42, kind, {**params, "stake": 10}, "1001")
    assert again.view.game_id == view.game_id, "a repeated interaction plays no second game"
    assert (await casino.economy.balance(G, 42)).balance == result.balance


async def test_bets_are_checked_before_any_money_moves(casino: RunningGames) -> None:
    """Bad bets and out-of-range stakes are refused naming the field."""
    with pytest.raises(InvalidInput, match="number"):
        await casino.games.play(
            G, 42, "roulette", {"bet": "straight", "number": 37, "stake": 5}, "1"
        )
    with pytest.raises(InvalidInput, match="stake"):
        await casino.games.play(G, 42, "coinflip", {"choice": "heads", "stake": 0}, "2")
    await casino.economy.update_settings(G, {"bet_max": 50})
    with pytest.raises(InvalidInput, match="from 1 to 50"):
        await casino.games.play(G, 42, "coinflip", {"choice": "heads", "stake": 51}, "3")
    with pytest.raises(InsufficientFunds):
        await casino.economy.update_settings(G, {"bet_max": 10_000})
        await casino.games.play(G, 42, "coinflip", {"choice": "heads", "stake": START + 1}, "4")
    assert (await casino.economy.balance(G, 42)).balance == START
    assert casino.check().ok


async def test_game_cooldown_per_kind(casino: RunningGames) -> None:
    """A per-scope cooldown applies per game kind, and each kind may set its own."""
    await casino.economy.update_settings(G, {"game_cooldown_seconds": 30})
    await casino.games.play(G, 42, "coinflip", {"choice": "tails", "stake": 1}, "10")
    with pytest.raises(OnCooldown):
        await casino.games.play(G, 42, "coinflip", {"choice": "tails", "stake": 1}, "11")
    await casino.games.play(G, 42, "slots", {"stake": 1}, "12")
    casino.clock.advance(30)  # type: ignore[attr-defined]
    await casino.games.play(G, 42, "coinflip", {"choice": "tails", "stake": 1}, "13")
    # A kind's own cooldown overrides the scope's default for that kind only.
    await casino.economy.update_settings(G, {"slots_cooldown_seconds": 0})
    await casino.games.play(G, 42, "slots", {"stake": 1}, "14")
    await casino.games.play(G, 42, "slots", {"stake": 1}, "15")
    with pytest.raises(OnCooldown):
        await casino.games.play(G, 42, "coinflip", {"choice": "tails", "stake": 1}, "16")
    with pytest.raises(InvalidInput, match="slots_cooldown_seconds"):
        await casino.economy.update_settings(G, {"slots_cooldown_seconds": -2})


async def test_blackjack_hit_stand_settles_and_pays_once(
    casino: RunningGames, fixed_seed: Callable[[str], None]
) -> None:
    """A played-out round moves escrow to the house and the payout to the player once."""
    fixed_seed(seed_where(plain, 0))
    view = await casino.games.start_blackjack(G, 42, 20, "2001")
    assert view.phase == "live" and len(view.dealer) == 1 and view.server_seed == ""
    assert "hit" in view.legal and "stand" in view.legal
    live = casino.check()
    assert live.ok and live.figures["escrow_coins"] == 20, live.text()
    assert (await casino.economy.balance(G, 42)).balance == START - 20
    done = await casino.games.move(view.game_id, 42, "stand", view.step, "2002")
    assert done.phase == "settled" and done.server_seed == "" and done.outcome is not None
    payout = done.outcome["payout"]
    assert (await casino.economy.balance(G, 42)).balance == START - 20 + payout
    report = casino.check()
    assert report.ok and report.figures["escrow_coins"] == 0, report.text()
    assert report.figures["house_coins"] == 20 - payout
    await reveal(casino)
    assert casino.games.verify(view.game_id).matches
    with pytest.raises(GameOver):
        await casino.games.move(view.game_id, 42, "hit", done.step, "2003")


async def test_double_raises_the_stake_through_the_wallet(
    casino: RunningGames, fixed_seed: Callable[[str], None]
) -> None:
    """Doubling escrows the extra stake in the same commit as the move."""
    fixed_seed(seed_where(plain, 0))
    view = await casino.games.start_blackjack(G, 42, 30, "3001")
    done = await casino.games.move(view.game_id, 42, "double", view.step, "3002")
    assert done.phase == "settled" and done.staked == 60
    assert done.outcome is not None
    assert (await casino.economy.balance(G, 42)).balance == START - 60 + done.outcome["payout"]
    assert casino.check().ok


async def test_double_without_money_changes_nothing(
    casino: RunningGames, fixed_seed: Callable[[str], None]
) -> None:
    """A raise the player cannot afford is refused and the game stays as it was."""
    fixed_seed(seed_where(plain, 0))
    view = await casino.games.start_blackjack(G, 42, 60, "3101")
    with pytest.raises(InsufficientFunds):
        await casino.games.move(view.game_id, 42, "double", view.step, "3102")
    again = await casino.games.show(view.game_id, 42)
    assert again.step == view.step and again.staked == 60 and again.phase == "live"
    assert casino.check().ok


async def test_split_plays_two_hands(
    casino: RunningGames, fixed_seed: Callable[[str], None]
) -> None:
    """A pair splits into two hands with a second stake; both settle."""

    def pair(state: bj.BlackjackState) -> bool:
        return not bj.is_settled(state) and bj.Action.SPLIT in bj.legal_actions(state)

    fixed_seed(seed_where(pair, 0))
    view = await casino.games.start_blackjack(G, 42, 10, "4001")
    split = await casino.games.move(view.game_id, 42, "split", view.step, "4002")
    assert len(split.hands) == 2 and split.staked == 20
    current, key = split, 4003
    while current.phase == "live":
        current = await casino.games.move(view.game_id, 42, "stand", current.step, str(key))
        key += 1
    assert current.outcome is not None and len(current.outcome["detail"]["hands"]) == 2
    assert (await casino.economy.balance(G, 42)).balance == START - 20 + current.outcome["payout"]
    assert casino.check().ok


async def test_one_live_game_per_player_and_kind(
    casino: RunningGames, fixed_seed: Callable[[str], None]
) -> None:
    """A second blackjack game is refused naming the running one; others cannot play it."""
    fixed_seed(seed_where(plain, 0))
    view = await casino.games.start_blackjack(G, 42, 10, "5001")
    with pytest.raises(GameInProgress) as caught:
        await casino.games.start_blackjack(G, 42, 10, "5002")
    assert caught.value.game_id == view.game_id
    assert view.game_id in str(caught.value)
    with pytest.raises(NotYourGame):
        await casino.games.move(view.game_id, 43, "stand", view.step, "5003")
    assert (await casino.economy.balance(G, 42)).balance == START - 10
    assert casino.check().ok


async def test_concurrent_double_clicks_apply_once(
    casino: RunningGames, fixed_seed: Callable[[str], None]
) -> None:
    """Two presses of the same button (same step, different interactions) hit once."""
    fixed_seed(seed_where(lambda s: plain(s) and bj.hand_value(s.hands[0].cards)[0] <= 11, 0))
    view = await casino.games.start_blackjack(G, 42, 10, "6001")
    views = []

    async def press(key: str) -> None:
        views.append(await casino.games.move(view.game_id, 42, "hit", view.step, key))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(press, "6002")
        nursery.start_soon(press, "6003")
    after = await casino.games.show(view.game_id, 42)
    assert after.step == view.step + 1
    assert len(after.hands[0][0]) == 3
    assert sorted(v.note != "" for v in views) == [False, True]


async def test_idle_game_stands_for_the_player_at_its_deadline(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, fixed_seed: Callable[[str], None]
) -> None:
    """After the idle deadline the game stands for the player and settles by itself."""
    fixed_seed(seed_where(plain, 0))

    def wall() -> float:
        return T0 + trio.current_time()

    async with running_games(tmp_path, clock=wall, commit_in_thread=False) as casino:
        view = await casino.games.start_blackjack(G, 42, 10, "7001")
        await trio.sleep(299)
        assert (await casino.games.show(view.game_id, 42)).phase == "live"
        await trio.sleep(2)
        record = casino.games.load(view.game_id)
        assert record is not None and record.phase == "settled"
        assert record.state["actions"] == ["stand"]
        assert record.outcome is not None
        balance = (await casino.economy.balance(G, 42)).balance
        assert balance == START - 10 + record.outcome["payout"]
        assert casino.check().ok
        assert (
            sample(
                casino.metrics,
                "croupier_games_settled_total",
                kind="blackjack",
                outcome=record.outcome["outcome"],
            )
            == 1
        )


async def test_young_games_resume_and_old_ones_are_refunded_once(
    tmp_path: Path, fixed_seed: Callable[[str], None]
) -> None:
    """After a restart a young game resumes identically; past the window it is refunded."""
    fixed_seed(seed_where(plain, 0))
    async with running_games(tmp_path) as casino:
        clock = casino.clock
        view = await casino.games.start_blackjack(G, 42, 25, "8001")
        before = casino.games.load(view.game_id)
    async with running_games(tmp_path, clock=clock) as casino:
        assert casino.games.load(view.game_id) == before
        resumed = await casino.games.show(view.game_id, 42)
        assert resumed == view
    clock.advance(7201)  # type: ignore[attr-defined]
    async with running_games(tmp_path, clock=clock) as casino:
        assert casino.recovery is not None
        assert (casino.recovery.resumed, casino.recovery.refunded) == (0, 1)
        assert (await casino.games.recover()).refunded == 0
        assert (await casino.economy.balance(G, 42)).balance == START
        record = casino.games.load(view.game_id)
        assert record is not None and record.phase == "refunded" and record.escrow == 0
        integrity = casino.check()
        assert integrity.ok and integrity.figures["games_live"] == 0, integrity.text()


async def test_a_crash_looping_game_is_refunded(
    tmp_path: Path, fixed_seed: Callable[[str], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past its restart intensity a game's actor is stopped and its stake refunded."""
    fixed_seed(seed_where(plain, 0))
    limits = Limits(restarts_max=2, restart_window_seconds=3600)
    async with running_games(tmp_path, limits=limits) as casino:
        view = await casino.games.start_blackjack(G, 42, 15, "9001")

        def broken(state: Any, action: Any) -> Any:
            raise RuntimeError("a bug in the rules")

        monkeypatch.setattr(bj, "apply", broken)
        for i in range(3):
            with pytest.raises(RuntimeFailure):
                await casino.games.move(view.game_id, 42, "hit", view.step, f"90{10 + i}")
        assert not casino.actors.is_resident(GAME_ACTOR, view.game_id)
        # The escalation hook runs after the failed asks were answered; wait for the
        # refund it delivers.
        with trio.fail_after(10):
            while (await casino.economy.balance(G, 42)).balance != START:
                await trio.sleep(0.01)
        record = casino.games.load(view.game_id)
        assert record is not None and record.phase == "refunded"
        assert (await casino.economy.balance(G, 42)).balance == START
        assert casino.check().ok
        refunded = sample(
            casino.metrics, "croupier_games_refunded_total", kind="blackjack", reason="escalated"
        )
        assert refunded == 1


async def test_verify_replays_games_from_revealed_seeds(casino: RunningGames) -> None:
    """Every settled game recomputes to its stored outcome; a live one cannot be verified."""
    ids = []
    for i, kind in enumerate(["coinflip", "slots", "roulette", "dice"]):
        params: dict[str, Any] = {
            "coinflip": {"choice": "tails"},
            "slots": {},
            "roulette": {"bet": "dozen", "number": 2},
            "dice": {"bet": "under"},
        }[kind]
        result = await casino.games.play(G, 42, kind, {**params, "stake": 3}, str(100 + i))
        ids.append(result.view.game_id)
    view = await casino.games.start_blackjack(G, 42, 5, "200")
    if view.phase == "live":
        with pytest.raises(InvalidInput):
            casino.games.verify(view.game_id)
        view = await casino.games.move(view.game_id, 42, "stand", view.step, "201")
    ids.append(view.game_id)
    await reveal(casino)
    for game_id in ids:
        report = casino.games.verify(game_id)
        assert report.matches and report.recomputed == report.stored
        assert hashlib.sha256(report.server_seed.encode()).hexdigest() == report.seed_hash


def test_callers_import_the_games_package_not_its_modules() -> None:
    """Code outside actors/games imports the package's front door (or the pure rules),
    never its service, actor, views, records, recovery or parking modules."""
    private = re.compile(r"actors\.games\.(service|actor|views|records|recovery|parking)\b")
    games_dir = REPO / "actors" / "games"
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("actors", "bot", "bench", "tests", "scripts")
        for path in (REPO / folder).rglob("*.py")
        if games_dir not in path.parents and private.search(path.read_text())
    ]
    assert offenders == []
    assert all(hasattr(actors.games, name) for name in actors.games.__all__)


def test_the_timer_service_loads_no_game_module() -> None:
    """actors.timers depends on no feature: importing it loads nothing of actors.games."""
    code = "import sys, actors.timers; print([m for m in sys.modules if 'actors.games' in m])"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


async def test_a_payout_lands_even_at_the_maximum_balance(
    casino: RunningGames, fixed_seed: Callable[[str], None]
) -> None:
    """A winning hand pays out to a wallet already at the maximum balance."""

    def stand_wins(state: bj.BlackjackState) -> bool:
        return plain(state) and bj.settle(bj.apply(state, bj.Action.STAND)).payout > 0

    fixed_seed(seed_where(stand_wins, 0))
    await casino.economy.update_settings(G, {"max_balance": 500, "bet_max": 500})
    view = await casino.games.start_blackjack(G, 42, 20, "9501")
    await casino.economy.adjust(G, 7, 42, "set", 500, "9502", reason="at the top")
    done = await casino.games.move(view.game_id, 42, "stand", view.step, "9503")
    assert done.outcome is not None and done.outcome["payout"] > 0
    assert (await casino.economy.balance(G, 42)).balance == 500 + done.outcome["payout"]
    report = casino.check()
    assert report.ok and report.figures["outbox_records"] == 0, report.text()
