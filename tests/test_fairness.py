"""Seed pairs: commit before the bet, reveal on rotation, one nonce per bet, checked."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from actors import check_store
from actors.games import fairness, rules
from bot import CommandSet
from bot.commands.games import games_commands
from bot.dispatch import RateLimit
from metrics import new_metrics
from tests.economy_fixtures import RunningGames, running_games
from tests.support.console_json import ask_json
from tests.support.invoke import ok, press, refused, run
from tests.support.server_process import CROUPIER, ServerProcess

G, ALICE = 1, 42
ROOT = Path(__file__).resolve().parent.parent
VERIFIER = ROOT / "scripts" / "verify_fair.py"


@pytest.fixture
async def casino(tmp_path: Path) -> AsyncIterator[RunningGames]:
    async with running_games(tmp_path) as running:
        await running.economy.update_settings(G, {"game_cooldown_seconds": 0})
        yield running


@pytest.fixture
def commands(casino: RunningGames) -> CommandSet:
    listed, buttons = games_commands(casino.games, casino.economy)
    return CommandSet(
        listed, buttons, metrics=new_metrics(), rate_limit=RateLimit(burst_commands=100_000)
    )


def pair_of(casino: RunningGames, user: int = ALICE) -> fairness.SeedPair:
    with casino.store.read() as txn:
        pair = fairness.active_pair(txn, casino.store, casino.economy.scope(G), user)
    assert pair is not None
    return pair


async def test_a_first_look_commits_a_pair_before_any_bet(commands: CommandSet) -> None:
    """/fairness opens the first pair: its hash, a random shown client seed, nonce 0; the
    first bet is dealt from exactly that pair, and the reply shows hash, seed and nonce."""
    first = ok(await run(commands, "fairness"))["active"]
    assert first["next_nonce"] == 0 and len(first["client_seed"]) == 16
    assert ok(await run(commands, "fairness"))["active"] == first, "a look changes nothing"
    reply = await run(commands, "coinflip", stake=1, choice="heads")
    game = ok(reply)
    assert (game["seed_hash"], game["client_seed"], game["nonce"]) == (
        first["seed_hash"],
        first["client_seed"],
        0,
    )
    shown = " ".join(f"{f.name}: {f.value}" for f in reply.fields)
    assert first["seed_hash"] in shown and first["client_seed"] in shown and "Nonce: 0" in shown
    assert ok(await run(commands, "fairness"))["active"]["next_nonce"] == 1
    for bad in ("tab\there", "x" * 65):
        assert refused(await run(commands, "fairness", client_seed=bad)) == "invalid_input"
    assert ok(await run(commands, "fairness"))["active"]["seq"] == 0, "a bad seed rotates nothing"


async def test_rotation_reveals_the_committed_seed_and_commits_a_new_one(
    casino: RunningGames, commands: CommandSet
) -> None:
    """Setting a client seed reveals the old server seed (hashing to what was shown), opens
    the pair whose seed was committed before the client seed was chosen, commits the next,
    restarts the nonce; a redelivered rotation answers the same."""
    before = ok(await run(commands, "fairness"))["active"]
    games = [ok(await run(commands, "dice", stake=2, bet="over")) for _ in range(3)]
    assert [game["nonce"] for game in games] == [0, 1, 2]
    rotated = ok(await run(commands, "fairness", interaction=777, client_seed="my own seed"))
    revealed, active = rotated["revealed"], rotated["active"]
    assert rules.seed_hash(revealed["server_seed"]) == before["seed_hash"] == revealed["seed_hash"]
    assert revealed["next_nonce"] == 3 and revealed["client_seed"] == before["client_seed"]
    assert active["seed_hash"] == before["next_seed_hash"] != before["seed_hash"]
    assert active["next_nonce"] == 0 and active["next_seed_hash"] != active["seed_hash"]
    assert active["client_seed"] == "my own seed" and active["seq"] == 1
    again = ok(await run(commands, "fairness", interaction=777, client_seed="my own seed"))
    assert again == rotated and pair_of(casino).seq == 1, "the redelivery opens no pair"
    for game in games:
        shown = ok(await run(commands, "verify", game=game["game_id"]))
        assert shown["matches"] and shown["server_seed"] == revealed["server_seed"]
    after = ok(await run(commands, "coinflip", stake=1, choice="tails"))
    assert (after["nonce"], after["client_seed"]) == (0, "my own seed")
    assert refused(await run(commands, "verify", game=after["game_id"])) == "seed_not_revealed"
    assert casino.check().ok


async def test_a_live_blackjack_round_keeps_its_seed_secret(commands: CommandSet) -> None:
    """A rotation is refused while a blackjack round dealt from the active pair is live,
    and the whole round, however many cards it takes, uses one nonce."""
    for _ in range(40):
        start = ok(await run(commands, "blackjack", stake=2))
        if start["phase"] == "live":
            break
    else:
        raise AssertionError("every deal was a natural")
    assert refused(await run(commands, "fairness", client_seed="now")) == "game_in_progress"
    nonce = start["nonce"]
    reply = await press(commands, f"bj:{start['game_id']}:0:stand")
    assert ok(reply)["phase"] == "settled" and ok(reply)["nonce"] == nonce
    assert ok(await run(commands, "fairness"))["active"]["next_nonce"] == nonce + 1
    revealed = ok(await run(commands, "fairness", client_seed="later"))["revealed"]
    assert revealed["next_nonce"] == nonce + 1


async def test_each_bet_consumes_one_nonce_under_redelivery_and_concurrency(
    casino: RunningGames,
) -> None:
    """A redelivered bet answers with its first game and nonce; concurrent bets of one
    player get distinct, contiguous nonces; the integrity check agrees."""
    first = await casino.games.play(G, ALICE, "slots", {"stake": 1}, "500")
    again = await casino.games.play(G, ALICE, "slots", {"stake": 1}, "500")
    assert again.view == first.view and pair_of(casino).nonce == 1

    async def bet(key: int) -> None:
        await casino.games.play(G, ALICE, "roulette", {"stake": 1, "bet": "red"}, str(key))

    async with trio.open_nursery() as nursery:
        for key in range(600, 620):
            nursery.start_soon(bet, key)
    assert pair_of(casino).nonce == 21
    report = casino.check()
    assert report.ok, report.text()
    assert report.figures["seed_pairs"] == 1


async def test_planted_changes_of_committed_seeds_are_caught(casino: RunningGames) -> None:
    """A server seed changed under its commitment, a seed swapped with its hash after
    bets, a new pair's seed other than the one committed before it, and a lost nonce are
    each reported by the one integrity check."""
    for key in range(3):
        await casino.games.play(G, ALICE, "coinflip", {"stake": 1, "choice": "heads"}, str(key))
    assert casino.check().ok
    pair, store = pair_of(casino), casino.store
    key = fairness.pair_key(pair.scope, pair.user, pair.seq)
    original = fairness.PAIR.encode(pair)

    def plant(value: bytes, db: str = fairness.PAIRS_DB, at: bytes = key) -> None:
        with store.env.begin(write=True) as txn:
            txn.put(at, value, db=store.db(db))

    other = rules.new_server_seed()
    plant(fairness.PAIR.encode(fairness.SeedPair(**{**vars(pair), "server_seed": other})))
    report = check_store(store)
    assert {v.check for v in report.violations} == {"seed_pairs_committed"}, report.text()
    assert "misses its commitment" in report.violations[0].detail
    swapped = {**vars(pair), "server_seed": other, "seed_hash": rules.seed_hash(other)}
    plant(fairness.PAIR.encode(fairness.SeedPair(**swapped)))
    report = check_store(store)
    assert {v.check for v in report.violations} == {"seed_pairs_committed"}, report.text()
    assert len(report.violations) == 3, "each of the three games names the changed seed"
    plant(original)
    assert check_store(store).ok
    await casino.games.rotate_seeds(G, ALICE, "mine", "rotate")
    opened = pair_of(casino)
    assert opened.seed_hash == pair.next_seed_hash and check_store(store).ok
    regrown = {**vars(opened), "server_seed": other, "seed_hash": rules.seed_hash(other)}
    opened_key = fairness.pair_key(opened.scope, opened.user, opened.seq)
    plant(fairness.PAIR.encode(fairness.SeedPair(**regrown)), at=opened_key)
    report = check_store(store)
    assert "not the seed its previous pair committed" in report.text(), report.text()
    plant(fairness.PAIR.encode(opened), at=opened_key)
    with store.env.begin(write=True) as txn:
        txn.delete(fairness.bet_key(pair.scope, pair.user, pair.seq, 1), db=store.db("seed_bets"))
    report = check_store(store)
    assert {v.check for v in report.violations} == {"seed_nonces_contiguous"}, report.text()


def console_request(ident: int, command: str, **options: Any) -> str:
    return json.dumps(
        {"user": ALICE, "guild": G, "id": ident, "command": command, "options": options}
    )


BETS = [
    ("coinflip", {"stake": 1, "choice": "heads"}),
    ("dice", {"stake": 1, "bet": "number", "number": 4}),
    ("slots", {"stake": 1}),
    ("roulette", {"stake": 1, "bet": "straight", "number": 7}),
]


def test_nonces_survive_sigkill_without_gap_or_reuse(tmp_path: Path) -> None:
    """A console killed with SIGKILL mid-burst, restarted and sent every bet again, has
    answered each acknowledged bet the same and used nonces 0 to n-1 exactly once."""
    unthrottled = {
        "CROUPIER_RATELIMIT_BURST": "10000",
        "CROUPIER_RATELIMIT_COMMANDS_PER_MINUTE": "1000000",
    }
    env = ServerProcess(tmp_path / "data", unthrottled, command="console").env
    setup = json.dumps(
        {
            "user": 7,
            "guild": G,
            "admin": True,
            "command": "economy-config",
            "options": {"setting": "game_cooldown_seconds", "value": "0"},
        }
    )
    bets = [console_request(1000 + i, *BETS[i % 4][:1], **BETS[i % 4][1]) for i in range(40)]
    console = subprocess.Popen(
        [CROUPIER, "console", "--json"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert console.stdin is not None and console.stdout is not None
    console.stdin.write(setup + "\n")
    console.stdin.flush()
    assert json.loads(console.stdout.readline())["ok"]
    console.stdin.write("".join(bet + "\n" for bet in bets))
    console.stdin.flush()
    acknowledged = [json.loads(console.stdout.readline()) for _ in range(random.randint(3, 25))]
    console.send_signal(signal.SIGKILL)
    console.wait(timeout=30)
    again = subprocess.run(
        [CROUPIER, "console", "--json"],
        input="".join(bet + "\n" for bet in bets)
        + console_request(5000, "fairness", client_seed="reveal")
        + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    replies = [json.loads(line) for line in again.stdout.splitlines()]
    assert all(reply["ok"] for reply in replies), [r for r in replies if not r["ok"]]
    for first, second in zip(acknowledged, replies, strict=False):
        assert first["result"] == second["result"], "an acknowledged bet answers the same"
    nonces = sorted(reply["result"]["nonce"] for reply in replies[:-1])
    assert nonces == list(range(len(bets)))
    assert replies[-1]["result"]["revealed"]["next_nonce"] == len(bets)
    check = subprocess.run([CROUPIER, "check"], env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout[-2000:]


def random_requests(rng: random.Random, count: int) -> list[dict[str, Any]]:
    """Instant bets of every kind and bet, in a random mix."""
    choices: list[tuple[str, dict[str, Any]]] = [
        ("coinflip", {"choice": "heads"}),
        ("coinflip", {"choice": "tails"}),
        ("dice", {"bet": "over"}),
        ("dice", {"bet": "under"}),
        ("slots", {}),
        *(("dice", {"bet": "number", "number": n}) for n in range(1, 7)),
        *(
            ("roulette", {"bet": bet, **({} if number is None else {"number": number})})
            for bet, number in rules.roulette.ALL_BETS
        ),
    ]
    picked = [rng.choice(choices) for _ in range(count)]
    return [
        {"command": kind, "options": {**options, "stake": rng.choice([1, 2, 3, 7])}}
        for kind, options in picked
    ]


async def play_blackjack_rounds(
    commands: CommandSet, rng: random.Random, rounds: int
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Blackjack rounds through the console, pressing random buttons to the end; each with
    the params a player knows (the stake and the actions pressed) and its final result."""
    finished = []
    for _ in range(rounds):
        stake = rng.choice([1, 2, 5])
        [reply] = await ask_json(commands, {"command": "blackjack", "options": {"stake": stake}})
        actions = []
        while reply["result"]["phase"] == "live":
            usable = [b["custom_id"] for b in reply["buttons"] if not b["disabled"]]
            # A pair is rare: split whenever it is offered, so splits get played too.
            splits = [custom_id for custom_id in usable if custom_id.endswith(":split")]
            pressed = splits[0] if splits else rng.choice(usable)
            actions.append(pressed.rsplit(":", 1)[1])
            [reply] = await ask_json(commands, {"button": pressed})
            assert reply["ok"], reply
        finished.append(({"stake": stake, "actions": actions}, reply["result"]))
    return finished


async def test_the_standalone_verifier_agrees_with_the_server_on_console_games(
    casino: RunningGames, commands: CommandSet
) -> None:
    """Hundreds of console games of every kind and bet, blackjack with every action,
    recomputed by verify_fair.py from the revealed seeds, equal the server's outcomes."""
    rng = random.Random(1515)
    await casino.economy.adjust(G, 7, ALICE, "set", 10**6, "funds", reason="a long session")
    await ask_json(commands, {"command": "fairness", "options": {"client_seed": "console: ☘"}})
    requests = random_requests(rng, 300)
    replies = await ask_json(commands, *requests)
    assert all(reply["ok"] for reply in replies), [r for r in replies if not r["ok"]][:1]
    games = [
        (request["command"], request["options"], reply["result"])
        for request, reply in zip(requests, replies, strict=True)
    ]
    for params, result in await play_blackjack_rounds(commands, rng, 80):
        games.append(("blackjack", params, result))
    pressed = {
        action for kind, params, _ in games if kind == "blackjack" for action in params["actions"]
    }
    assert pressed == {"hit", "stand", "double", "split"}
    [rotated] = await ask_json(commands, {"command": "fairness", "options": {"client_seed": "x"}})
    server_seed = rotated["result"]["revealed"]["server_seed"]
    lines = []
    for kind, params, result in games:
        lines.append(
            json.dumps(
                {
                    "game": kind,
                    "server_seed": server_seed,
                    "client_seed": result["client_seed"],
                    "nonce": result["nonce"],
                    "params": params,
                    "seed_hash": result["seed_hash"],
                }
            )
        )
    assert sorted(result["nonce"] for _, _, result in games) == list(range(len(games)))
    done = subprocess.run(
        [sys.executable, "-I", str(VERIFIER), "batch"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    recomputed = [json.loads(line) for line in done.stdout.splitlines()]
    kinds: set[str] = set()
    for (kind, _, result), got in zip(games, recomputed, strict=True):
        assert got["seed_hash_matches"] is True
        assert (got["outcome"], got["payout"], got["detail"]) == (
            result["outcome"],
            result["payout"],
            result["detail"],
        ), (kind, result["game_id"])
        kinds.add(kind)
    assert kinds == set(rules.KINDS)
