"""FAIRNESS.md, its test vectors and the standalone verifier agree with the server's rules."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import random
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from actors.games import rules
from actors.games.rules import blackjack as bj
from actors.games.rules import roulette, slots

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "FAIRNESS.md"
VERIFIER = ROOT / "scripts" / "verify_fair.py"
SETTLED_FIELDS = ("outcome", "payout", "detail")


def load_verifier() -> ModuleType:
    """The verifier as a module, loaded from its file path (it is not a package module)."""
    spec = importlib.util.spec_from_file_location("verify_fair", VERIFIER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


verifier = load_verifier()
VECTORS: list[dict[str, Any]] = verifier.vectors(DOC.read_text(encoding="utf-8"))


def run_verifier(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The verifier run as a player runs it: a separate interpreter, no repository on its path."""
    return subprocess.run(
        [sys.executable, "-I", str(VERIFIER), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )


def random_game(rng: random.Random) -> dict[str, Any]:
    """A random legal game of a random kind and bet, blackjack played to its end."""
    kind = rng.choice(rules.KINDS)
    server_seed = hashlib.sha256(rng.randbytes(16)).hexdigest()
    client_seed = rng.choice(["a", "lucky:7", "née ☘", "x" * 64, str(rng.random())])
    nonce = rng.choice([0, 1, rng.randrange(1000), rng.randrange(2**63)])
    params: dict[str, Any] = {"stake": rng.choice([1, 2, 3, 5, 10, 999, 10**15])}
    if kind == "coinflip":
        params["choice"] = rng.choice(["heads", "tails"])
    elif kind == "dice":
        params["bet"] = rng.choice(["number", "over", "under"])
        if params["bet"] == "number":
            params["number"] = rng.randint(1, 6)
    elif kind == "roulette":
        params["bet"], number = rng.choice(roulette.ALL_BETS)
        if number is not None:
            params["number"] = number
    elif kind == "blackjack":
        state = bj.deal(server_seed, client_seed, nonce, params["stake"])
        while not bj.is_settled(state):
            state = bj.apply(state, rng.choice(sorted(bj.legal_actions(state))))
        params["actions"] = [str(action) for action in state.actions]
    return {
        "game": kind,
        "server_seed": server_seed,
        "client_seed": client_seed,
        "nonce": nonce,
        "params": params,
    }


def test_the_vectors_cover_every_game_and_bet_kind() -> None:
    """Every game, every bet and every blackjack action and ending has a published vector."""
    bets = {(v["game"], v["params"].get("bet", v["params"].get("choice"))) for v in VECTORS}
    assert {("coinflip", "heads"), ("coinflip", "tails"), ("slots", None)} <= bets
    assert {("dice", bet) for bet in ("number", "over", "under")} <= bets
    assert {("roulette", bet) for bet in roulette.PAYOUT_MULTIPLES} <= bets
    blackjack = [v for v in VECTORS if v["game"] == "blackjack"]
    actions = {action for v in blackjack for action in v["params"]["actions"]}
    assert actions == {str(action) for action in bj.Action}
    results = {hand["result"] for v in blackjack for hand in v["detail"]["hands"]}
    assert results == {"natural", "win", "push", "loss", "bust"}
    odd_naturals = [
        v for v in blackjack if v["params"]["stake"] % 2 and v["params"]["actions"] == []
    ]
    assert any(v["detail"]["hands"][0]["result"] == "natural" for v in odd_naturals)
    assert {v["outcome"] for v in VECTORS} == {"win", "push", "loss"}


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_the_server_rules_give_every_published_vector(vector: dict[str, Any]) -> None:
    """The server's rules recompute each vector's outcome, payout, detail and seed hash."""
    record = rules.verify(
        vector["game"],
        vector["server_seed"],
        vector["client_seed"],
        vector["nonce"],
        vector["params"],
    )
    assert {key: record[key] for key in SETTLED_FIELDS} == {
        key: vector[key] for key in SETTLED_FIELDS
    }
    assert rules.seed_hash(vector["server_seed"]) == vector["seed_hash"]


def test_the_standalone_verifier_agrees_with_every_published_vector() -> None:
    """`verify_fair.py vectors FAIRNESS.md`, run alone, finds every vector equal."""
    done = run_verifier("vectors", str(DOC))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == f"{len(VECTORS)} of {len(VECTORS)} test vectors agree"


def test_the_verifier_reports_a_changed_vector() -> None:
    """A vector whose payout is changed by one coin is reported and fails the run."""
    text = DOC.read_text(encoding="utf-8")
    changed = json.dumps(VECTORS[0], ensure_ascii=False)
    tampered = dict(VECTORS[0], payout=VECTORS[0]["payout"] + 1)
    assert changed in text
    path = DOC.parent / "tests" / ".fairness-tampered.md"
    try:
        path.write_text(text.replace(changed, json.dumps(tampered, ensure_ascii=False)), "utf-8")
        done = run_verifier("vectors", str(path))
    finally:
        path.unlink(missing_ok=True)
    assert done.returncode == 1
    assert f"MISMATCH {VECTORS[0]['name']}" in done.stdout


def test_the_verifier_agrees_with_the_server_on_random_games_of_every_kind() -> None:
    """600 random games of every kind and bet, recomputed by the verifier in one batch run."""
    rng = random.Random(15)
    games = [random_game(rng) for _ in range(600)]
    assert {game["game"] for game in games} == set(rules.KINDS)
    done = run_verifier("batch", stdin="".join(json.dumps(game) + "\n" for game in games))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(games)
    for game, line in zip(games, lines, strict=True):
        seeds = (game["server_seed"], game["client_seed"], game["nonce"])
        expected = rules.verify(game["game"], *seeds, game["params"])
        got = json.loads(line)
        assert {key: got[key] for key in SETTLED_FIELDS} == {
            key: expected[key] for key in SETTLED_FIELDS
        }, game
        assert got["seed_hash"] == rules.seed_hash(game["server_seed"])


def test_play_checks_the_seed_hash_it_is_given() -> None:
    """`play --seed-hash` exits 0 for the seed's own hash and 2 for any other."""
    vector = next(v for v in VECTORS if v["game"] == "dice" and v["params"]["bet"] == "over")
    args = [
        "play",
        "--game=dice",
        f"--server-seed={vector['server_seed']}",
        f"--client-seed={vector['client_seed']}",
        f"--nonce={vector['nonce']}",
        f"--stake={vector['params']['stake']}",
        "--bet=over",
    ]
    good = run_verifier(*args, f"--seed-hash={vector['seed_hash']}")
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["detail"] == vector["detail"]
    bad = run_verifier(*args, "--seed-hash=" + "0" * 64)
    assert bad.returncode == 2
    assert json.loads(bad.stdout)["seed_hash_matches"] is False
    hashed = run_verifier("hash", vector["server_seed"])
    assert hashed.stdout.strip() == vector["seed_hash"]


def test_the_verifier_refuses_rounds_the_rules_refuse() -> None:
    """Unfinished rounds, illegal actions and another scheme raise in the verifier too."""
    vector = next(v for v in VECTORS if v["params"].get("actions") == ["split", "stand", "stand"])
    for actions in (["split", "stand"], ["split", "split"], ["stand", "stand", "stand", "stand"]):
        with pytest.raises(ValueError):
            verifier.recompute({**vector, "params": {**vector["params"], "actions": actions}})
    with pytest.raises(ValueError):
        verifier.recompute({**vector, "scheme": 2})


def test_the_verifier_imports_only_the_standard_library() -> None:
    """verify_fair.py imports nothing but standard-library modules: no server code at all."""
    tree = ast.parse(VERIFIER.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module is not None
            imported.add(node.module.split(".")[0])
    assert imported and imported <= set(sys.stdlib_module_names), imported


def test_the_published_tables_are_the_rules_tables() -> None:
    """The reel strip, pay table and red pockets of FAIRNESS.md and the verifier are the rules'."""
    assert tuple(verifier.REEL) == slots.REEL
    assert [(tuple(line), pays) for line, pays in verifier.PAYTABLE] == [
        (tuple(slots.ANY if s == "any" else s for s in line), pays) for line, pays in slots.PAYTABLE
    ]
    assert verifier.RED == roulette.RED
    assert verifier.ROULETTE_MULTIPLES == roulette.PAYOUT_MULTIPLES
    text = DOC.read_text(encoding="utf-8")
    red = ", ".join(str(pocket) for pocket in sorted(roulette.RED))
    assert red in " ".join(text.split())
    start = 0
    for symbol, (emoji, stops) in slots.SYMBOLS.items():
        assert f"| {start}–{start + stops - 1} | {symbol} {emoji} |" in text
        start += stops
