"""Games at every phase, for the restore test: prints each game once it is acknowledged.

Usage: ``python -m tests.support.games_load DATA_DIR OLD_AT YOUNG_AT``. The process plays
on a wall clock it controls: the first ``OLD_PLAYERS`` players play at ``OLD_AT``, then
the clock jumps to ``YOUNG_AT`` and the rest play, all players of a batch at once. Every
fourth player plays an instant game first; every player plays one blackjack game, taken
to the phase its category names (just dealt, after a hit, after a split, after a split and
a double, stood, or a natural), from a deal chosen for it. Each acknowledged start or move
prints one JSON line ``{"batch", "category", "record"}`` where ``record`` is the game's
stored record (msgpack, in hex) as it was when the call returned. After the last game the
process prints ``done`` and waits to be killed.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import sys
from pathlib import Path

import trio

from actors.games import GAME, LIVE, SETTLED, rules
from actors.games.rules import blackjack as bj
from tests.economy_fixtures import RunningGames, WallClock, running_games

G = 1
PLAYERS = 1_000
OLD_PLAYERS = 400
USER_BASE = 10_000
STAKE = 10
CLIENT_SEED = "restore-test"
# Every fourth player plays an instant game before its blackjack game.
INSTANT_EVERY = 4
INSTANT_GAMES: tuple[tuple[str, dict[str, object]], ...] = (
    ("coinflip", {"choice": "tails"}),
    ("dice", {"bet": "number", "number": 6}),
    ("slots", {}),
    ("roulette", {"bet": "dozen", "number": 3}),
)
# The actions each category takes after the deal, and the phase they must leave it in.
CATEGORIES: dict[str, tuple[tuple[bj.Action, ...], str]] = {
    "dealt": ((), LIVE),
    "hit": ((bj.Action.HIT,), LIVE),
    "split": ((bj.Action.SPLIT,), LIVE),
    "split_double": ((bj.Action.SPLIT, bj.Action.DOUBLE), LIVE),
    "stood": ((bj.Action.STAND,), SETTLED),
    "natural": ((), SETTLED),
}
# Longer than the jump from OLD_AT to YOUNG_AT, so the old games' idle deadlines do not
# fall due in this process and stand for their players: at the restart they must still be
# live, and old, for recovery to refund them.
IDLE_SECONDS = 3 * 3600.0

# The server seed of the game the current task starts: the test chooses deals.
SERVER_SEED: contextvars.ContextVar[str] = contextvars.ContextVar("server_seed")


def category_of(player: int) -> str:
    return list(CATEGORIES)[player % len(CATEGORIES)]


def user_of(player: int) -> int:
    return USER_BASE + player


def server_seed_for(player: int, category: str) -> str:
    """The first deterministic seed whose deal lets ``category``'s actions reach its phase."""
    actions, phase = CATEGORIES[category]
    # Each blackjack game is the first bet of a fresh seed pair (see ``play``).
    nonce = 0
    for attempt in range(100_000):
        seed = hashlib.sha256(f"{player}-{attempt}".encode()).hexdigest()
        state = bj.deal(seed, CLIENT_SEED, nonce, STAKE)
        for action in actions:
            if action not in bj.legal_actions(state):
                break
            state = bj.apply(state, action)
        else:
            if bj.is_settled(state) == (phase == SETTLED):
                return seed
    raise AssertionError(f"no deal for {category} with nonce {nonce}")


def acknowledge(casino: RunningGames, game_id: str, batch: str, category: str) -> None:
    """Print the game's record as it is durable now that the call returned."""
    record = casino.games.load(game_id)
    assert record is not None, game_id
    line = {"batch": batch, "category": category, "record": GAME.encode(record).hex()}
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


async def play(casino: RunningGames, player: int, batch: str) -> None:
    user = user_of(player)
    if player % INSTANT_EVERY == 0:
        kind, params = INSTANT_GAMES[player // INSTANT_EVERY % len(INSTANT_GAMES)]
        SERVER_SEED.set(hashlib.sha256(f"instant-{player}".encode()).hexdigest())
        key = str(PLAYERS + player + 1)
        result = await casino.games.play(G, user, kind, {**params, "stake": STAKE}, key)
        acknowledge(casino, result.view.game_id, batch, f"instant:{kind}")
    category = category_of(player)
    actions, phase = CATEGORIES[category]
    SERVER_SEED.set(server_seed_for(player, category))
    # A pair commits its successor's seed: the first rotation commits the chosen seed as
    # the next one, the second opens the pair that deals from it.
    await casino.games.rotate_seeds(G, user, CLIENT_SEED, f"rotate-{player}")
    await casino.games.rotate_seeds(G, user, CLIENT_SEED, f"rotate-again-{player}")
    key = str(player + 1)
    view = await casino.games.start_blackjack(G, user, STAKE, key)
    acknowledge(casino, view.game_id, batch, category)
    for number, action in enumerate(actions):
        key = f"{player + 1}-{number}"
        view = await casino.games.move(view.game_id, user, str(action), view.step, key)
        acknowledge(casino, view.game_id, batch, category)
    assert view.phase == phase, (player, category, view)


async def play_batch(casino: RunningGames, players: range, batch: str) -> None:
    """Every player of the batch plays at once."""
    async with trio.open_nursery() as nursery:
        for player in players:
            nursery.start_soon(play, casino, player, batch)


async def main(data_dir: str, old_at: float, young_at: float) -> None:
    # The engine draws each game's server seed here; reading it from the task's context
    # lets concurrent players each get the deal chosen for them.
    rules.new_server_seed = SERVER_SEED.get
    clock = WallClock(old_at)
    async with running_games(Path(data_dir), clock=clock, idle_seconds=IDLE_SECONDS) as casino:
        await play_batch(casino, range(OLD_PLAYERS), "old")
        clock.now = young_at
        await play_batch(casino, range(OLD_PLAYERS, PLAYERS), "young")
        print("done", flush=True)
        await trio.sleep_forever()


if __name__ == "__main__":
    trio.run(main, sys.argv[1], float(sys.argv[2]), float(sys.argv[3]))
