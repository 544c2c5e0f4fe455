#!/usr/bin/env python3
"""Recompute any Croupier game from its revealed seeds, with nothing but Python's standard library.

This file is written from FAIRNESS.md alone (scheme 1) and shares no code with the server,
so a player can read all of it, run it anywhere with Python 3.10 or newer, and trust what
it says without trusting the casino. Usage:

    verify_fair.py hash SERVER_SEED
        Print SHA-256 of the server seed: compare it with the hash you were shown.

    verify_fair.py play --server-seed S --client-seed C --nonce N --game KIND --stake COINS
                        [--choice heads|tails] [--bet BET] [--number N] [--actions a,b,...]
                        [--seed-hash HASH]
        Recompute one game and print its outcome, payout and detail as JSON. With
        --seed-hash the server seed must hash to it, or the exit status is 2.

    verify_fair.py batch < games.jsonl
        One game per input line as JSON {"game", "server_seed", "client_seed", "nonce",
        "params", optional "seed_hash"}; one JSON result per output line.

    verify_fair.py vectors FAIRNESS.md
        Check every test vector published in FAIRNESS.md; exit status 1 if one differs.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import sys
from collections.abc import Iterator
from typing import Any

SCHEME = 1

# --- the random stream (FAIRNESS.md, "Stream") ----------------------------------------------


class Stream:
    """The 32-bit numbers HMAC-SHA256(server seed, "client:nonce:counter") yields, in order."""

    def __init__(self, server_seed: str, client_seed: str, nonce: int) -> None:
        if not re.fullmatch("[0-9a-f]{64}", server_seed):
            raise ValueError("the server seed is 64 lowercase hex digits")
        if not 0 < len(client_seed) <= 64 or not client_seed.isprintable():
            raise ValueError("the client seed is 1 to 64 printable characters")
        if not 0 <= nonce < 2**63:
            raise ValueError("the nonce is a whole number from 0 to 2**63 - 1")
        self.key = server_seed.encode()
        self.client_seed = client_seed
        self.nonce = nonce
        self.chunks = self._chunks()

    def _chunks(self) -> Iterator[int]:
        counter = 0
        while True:
            message = f"{self.client_seed}:{self.nonce}:{counter}".encode()
            block = hmac.new(self.key, message, hashlib.sha256).digest()
            for offset in range(0, 32, 4):
                yield int.from_bytes(block[offset : offset + 4], "big")
            counter += 1

    def below(self, n: int) -> int:
        """A uniform number in [0, n): numbers at or above the top multiple of n are skipped."""
        assert 1 <= n <= 2**32
        limit = 2**32 - 2**32 % n
        for chunk in self.chunks:
            if chunk < limit:
                return chunk % n
        raise AssertionError("the stream never ends")

    def shuffled(self, items: list[int]) -> Iterator[int]:
        """Forward Fisher-Yates: position i swaps with i + below(len - i), then is dealt."""
        order = list(items)
        for i in range(len(order) - 1):
            j = i + self.below(len(order) - i)
            order[i], order[j] = order[j], order[i]
            yield order[i]
        yield order[-1]


def outcome_of(staked: int, payout: int, detail: dict[str, Any]) -> dict[str, Any]:
    result = "win" if payout > staked else "push" if payout == staked else "loss"
    return {"outcome": result, "payout": payout, "detail": detail}


# --- instant games -----------------------------------------------------------------------


def coinflip(stream: Stream, stake: int, params: dict[str, Any]) -> dict[str, Any]:
    choice = params["choice"]
    if choice not in ("heads", "tails"):
        raise ValueError("a coinflip calls heads or tails")
    side = ("heads", "tails")[stream.below(2)]
    payout = 2 * stake if side == choice else 0
    return outcome_of(stake, payout, {"choice": choice, "side": side})


def dice(stream: Stream, stake: int, params: dict[str, Any]) -> dict[str, Any]:
    bet, number = params["bet"], params.get("number")
    if bet == "number":
        if number not in range(1, 7):
            raise ValueError("a number bet guesses 1 to 6")
        rolled = [1 + stream.below(6)]
        won, multiple = rolled[0] == number, 6
    elif bet in ("over", "under") and number is None:
        rolled = [1 + stream.below(6), 1 + stream.below(6)]
        # A total of exactly 7 loses both bets.
        won = sum(rolled) > 7 if bet == "over" else sum(rolled) < 7
        multiple = 2
    else:
        raise ValueError("a dice bet is number (with a number), over or under")
    detail = {"bet": bet, "number": number, "dice": rolled, "total": sum(rolled)}
    return outcome_of(stake, multiple * stake if won else 0, detail)


RED = {1, 3, 5, 7, 9, 12, 14, 16, 18, 19, 21, 23, 25, 27, 30, 32, 34, 36}
ROULETTE_MULTIPLES = {
    "straight": 36,
    "red": 2,
    "black": 2,
    "odd": 2,
    "even": 2,
    "low": 2,
    "high": 2,
    "dozen": 3,
    "column": 3,
}


def roulette_wins(bet: str, number: int | None, pocket: int) -> bool:
    if bet == "straight":
        return pocket == number
    if pocket == 0:
        return False
    return {
        "red": pocket in RED,
        "black": pocket not in RED,
        "odd": pocket % 2 == 1,
        "even": pocket % 2 == 0,
        "low": pocket <= 18,
        "high": pocket >= 19,
        "dozen": (pocket - 1) // 12 + 1 == number,
        "column": (pocket - 1) % 3 + 1 == number,
    }[bet]


def roulette(stream: Stream, stake: int, params: dict[str, Any]) -> dict[str, Any]:
    bet, number = params["bet"], params.get("number")
    if bet not in ROULETTE_MULTIPLES:
        raise ValueError(f"a roulette bet is one of {', '.join(ROULETTE_MULTIPLES)}")
    numbers = {"straight": range(37), "dozen": range(1, 4), "column": range(1, 4)}.get(bet)
    if (numbers is None) != (number is None) or (numbers is not None and number not in numbers):
        raise ValueError("straight, dozen and column take a number, the other bets none")
    pocket = stream.below(37)
    color = "green" if pocket == 0 else "red" if pocket in RED else "black"
    payout = ROULETTE_MULTIPLES[bet] * stake if roulette_wins(bet, number, pocket) else 0
    detail = {"bet": bet, "number": number, "pocket": pocket, "color": color}
    return outcome_of(stake, payout, detail)


REEL = ["cherry"] * 5 + ["lemon"] * 9 + ["grape"] * 7 + ["bell"] * 6 + ["seven"] * 3
REEL += ["diamond"] * 2
PAYTABLE = [
    (("diamond", "diamond", "diamond"), 250),
    (("seven", "seven", "seven"), 100),
    (("bell", "bell", "bell"), 25),
    (("grape", "grape", "grape"), 15),
    (("cherry", "cherry", "cherry"), 10),
    (("lemon", "lemon", "lemon"), 5),
    (("cherry", "cherry", "any"), 4),
    (("cherry", "any", "any"), 2),
]


def slots(stream: Stream, stake: int, params: dict[str, Any]) -> dict[str, Any]:
    stops = [stream.below(len(REEL)) for _ in range(3)]
    symbols = [REEL[stop] for stop in stops]
    multiple = next(
        (
            pays
            for line, pays in PAYTABLE
            if all(want in ("any", got) for want, got in zip(line, symbols, strict=True))
        ),
        0,
    )
    return outcome_of(stake, multiple * stake, {"stops": stops, "symbols": symbols})


# --- blackjack ---------------------------------------------------------------------------


def points(cards: list[int]) -> int:
    """The best total: ranks A=1 .. K=13 by card % 13, faces 10, one ace as 11 if it fits."""
    total = sum(min(card % 13 + 1, 10) for card in cards)
    if any(card % 13 == 0 for card in cards) and total + 10 <= 21:
        total += 10
    return total


def natural(cards: list[int]) -> bool:
    return len(cards) == 2 and points(cards) == 21


def blackjack(stream: Stream, stake: int, params: dict[str, Any]) -> dict[str, Any]:
    shoe = stream.shuffled([card for _deck in range(6) for card in range(52)])
    p1, d1, p2, d2 = next(shoe), next(shoe), next(shoe), next(shoe)
    dealer, hands, bets = [d1, d2], [[p1, p2]], [stake]
    # The dealer peeks: a natural on either side ends the round at the deal.
    at_deal = natural(dealer) or natural(hands[0])
    done = [at_deal]
    for action in params["actions"]:
        if all(done):
            raise ValueError(f"the round is over before {action!r}")
        i = done.index(False)
        hand, split = hands[i], len(hands) == 2
        if action == "hit":
            hand.append(next(shoe))
        elif action == "stand":
            done[i] = True
        elif action == "double" and len(hand) == 2:
            hand.append(next(shoe))
            bets[i] *= 2
            done[i] = True
        elif action == "split" and not split and len(hand) == 2 and hand[0] % 13 == hand[1] % 13:
            # The first hand takes the next card, then the second hand.
            hands = [[hand[0], next(shoe)], [hand[1], next(shoe)]]
            bets, done = [stake, stake], [False, False]
        else:
            raise ValueError(f"{action!r} is not allowed there")
        split = len(hands) == 2
        for j, cards in enumerate(hands):
            # A hand at 21 or more stands; split aces take their one card and stand.
            if points(cards) >= 21 or (split and cards[0] % 13 == 0):
                done[j] = True
    if not all(done):
        raise ValueError("these actions leave the round unfinished")
    split = len(hands) == 2
    if not at_deal and any(points(cards) <= 21 for cards in hands):
        # The dealer draws to 17 and stands on every 17, soft or hard.
        while points(dealer) < 17:
            dealer.append(next(shoe))
    settled = []
    for cards, bet in zip(hands, bets, strict=True):
        total, house = points(cards), points(dealer)
        if not split and natural(cards):
            # 3:2 rounded up to a whole coin: an odd stake never loses half a coin.
            result, paid = (
                ("push", bet) if natural(dealer) else ("natural", bet + (3 * bet + 1) // 2)
            )
        elif total > 21:
            result, paid = "bust", 0
        elif total < house <= 21:
            result, paid = "loss", 0
        elif total == house:
            result, paid = "push", bet
        else:
            result, paid = "win", 2 * bet
        settled.append(
            {"cards": cards, "bet": bet, "total": total, "result": result, "payout": paid}
        )
    detail = {
        "dealer": dealer,
        "dealer_total": points(dealer),
        "staked": sum(bets),
        "hands": settled,
    }
    return outcome_of(sum(bets), sum(hand["payout"] for hand in settled), detail)


GAMES = {
    "blackjack": blackjack,
    "coinflip": coinflip,
    "dice": dice,
    "roulette": roulette,
    "slots": slots,
}


def recompute(game: dict[str, Any]) -> dict[str, Any]:
    """The outcome of one game: {"game", "server_seed", "client_seed", "nonce", "params"}."""
    if game.get("scheme", SCHEME) != SCHEME:
        raise ValueError(f"this verifier knows scheme {SCHEME} only")
    if game["game"] not in GAMES:
        raise ValueError(f"the game is one of {', '.join(GAMES)}")
    params = dict(game["params"])
    stake = params["stake"]
    if not isinstance(stake, int) or stake < 1:
        raise ValueError("the stake is a whole number of coins")
    stream = Stream(game["server_seed"], game["client_seed"], int(game["nonce"]))
    result = GAMES[game["game"]](stream, stake, params)
    result["seed_hash"] = seed_hash(game["server_seed"])
    if "seed_hash" in game:
        result["seed_hash_matches"] = result["seed_hash"] == game["seed_hash"]
    return result


def seed_hash(server_seed: str) -> str:
    return hashlib.sha256(server_seed.encode()).hexdigest()


def vectors(text: str) -> list[dict[str, Any]]:
    """The test vectors: every ```json block of FAIRNESS.md below its "Test vectors" title."""
    published = text.split("## Test vectors", 1)[1]
    found: list[dict[str, Any]] = []
    for block in re.findall(r"```json\n(.*?)```", published, flags=re.DOTALL):
        found.extend(json.loads(block))
    return found


def check_vectors(path: str) -> int:
    with open(path, encoding="utf-8") as file:
        published = vectors(file.read())
    failed = 0
    for vector in published:
        got = recompute(vector)
        expected = {key: vector[key] for key in ("outcome", "payout", "detail", "seed_hash")}
        if {key: got[key] for key in expected} != expected:
            failed += 1
            print(f"MISMATCH {vector['name']}: got {json.dumps(got)}")
    print(f"{len(published) - failed} of {len(published)} test vectors agree")
    return 1 if failed or not published else 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    hashing = commands.add_parser("hash")
    hashing.add_argument("server_seed")
    play = commands.add_parser("play")
    play.add_argument("--server-seed", required=True)
    play.add_argument("--client-seed", required=True)
    play.add_argument("--nonce", required=True, type=int)
    play.add_argument("--game", required=True, choices=sorted(GAMES))
    play.add_argument("--stake", required=True, type=int)
    play.add_argument("--choice")
    play.add_argument("--bet")
    play.add_argument("--number", type=int)
    play.add_argument("--actions", default="")
    play.add_argument("--seed-hash")
    commands.add_parser("batch")
    check = commands.add_parser("vectors")
    check.add_argument("path")
    args = parser.parse_args(argv)
    if args.command == "hash":
        print(seed_hash(args.server_seed))
        return 0
    if args.command == "vectors":
        return check_vectors(args.path)
    if args.command == "batch":
        for line in sys.stdin:
            if line.strip():
                print(json.dumps(recompute(json.loads(line)), sort_keys=True), flush=True)
        return 0
    params: dict[str, Any] = {"stake": args.stake}
    if args.game == "coinflip":
        params["choice"] = args.choice
    elif args.game in ("dice", "roulette"):
        params["bet"] = args.bet
        if args.number is not None:
            params["number"] = args.number
    elif args.game == "blackjack":
        params["actions"] = [action for action in args.actions.split(",") if action]
    game = {
        "game": args.game,
        "server_seed": args.server_seed,
        "client_seed": args.client_seed,
        "nonce": args.nonce,
        "params": params,
    }
    if args.seed_hash:
        game["seed_hash"] = args.seed_hash
    result = recompute(game)
    print(json.dumps(result, indent=2, sort_keys=True))
    return 2 if result.get("seed_hash_matches") is False else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
