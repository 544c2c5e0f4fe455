"""Tests of the one-draw games: coinflip, dice, slots and roulette, and their verify path."""

from __future__ import annotations

import collections
import itertools
import re
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.errors import InvalidAmount, InvalidInput
from actors.games import rules
from actors.games.rules import Settlement, coinflip, dice, roulette, slots
from limits import payout_multiple_max, stake_coins_max

SERVER_SEED = "5a" * 32

stakes = st.integers(min_value=1, max_value=stake_coins_max)
nonces = st.integers(min_value=0, max_value=10**6)

Seeds = tuple[str, str, int]

# Each one-draw game with its stored params and the same game through its typed function.
SIMPLE_GAMES: list[tuple[str, dict[str, Any], Callable[[Seeds], Settlement]]] = [
    ("coinflip", {"stake": 10, "choice": "tails"}, lambda s: coinflip.play(*s, 10, "tails")),
    ("dice", {"stake": 10, "bet": "number", "number": 6}, lambda s: dice.play(*s, 10, "number", 6)),
    ("dice", {"stake": 10, "bet": "under"}, lambda s: dice.play(*s, 10, "under")),
    (
        "roulette",
        {"stake": 10, "bet": "straight", "number": 17},
        lambda s: roulette.play(*s, 10, "straight", 17),
    ),
    (
        "roulette",
        {"stake": 10, "bet": "column", "number": 2},
        lambda s: roulette.play(*s, 10, "column", 2),
    ),
    ("roulette", {"stake": 10, "bet": "even"}, lambda s: roulette.play(*s, 10, "even")),
    ("slots", {"stake": 10}, lambda s: slots.play(*s, 10)),
]


def enumerated_rtp(outcomes: list[Settlement], stake: int) -> Fraction:
    """The mean payout per coin staked over equally likely outcomes."""
    return Fraction(sum(outcome.payout for outcome in outcomes), len(outcomes) * stake)


def assert_consistent(outcome: Settlement, stake: int) -> None:
    """An outcome's label agrees with its payout, and it survives a msgpack round trip."""
    expected = "win" if outcome.payout > stake else "push" if outcome.payout == stake else "loss"
    assert outcome.result == expected
    packed = msgpack.packb(outcome.to_record())
    assert Settlement.from_record(msgpack.unpackb(packed)) == outcome


# Coinflip.


def test_coinflip_pays_double_on_a_right_call_and_nothing_otherwise() -> None:
    """Every (call, side) pair pays 2x stake on a match and 0 on a miss."""
    for choice, side in itertools.product(coinflip.SIDES, repeat=2):
        outcome = coinflip.resolve(7, choice, side)
        assert outcome.payout == (14 if choice == side else 0)
        assert outcome.detail == {"choice": choice, "side": side}
        assert_consistent(outcome, 7)


def test_coinflip_rtp_is_exactly_one() -> None:
    """Enumerating both sides for each call gives a return of exactly 1."""
    for choice in coinflip.SIDES:
        outcomes = [coinflip.resolve(3, choice, side) for side in coinflip.SIDES]
        assert enumerated_rtp(outcomes, 3) == Fraction(1) == coinflip.rtp()


def test_coinflip_lands_on_both_sides_about_equally() -> None:
    """Over 4000 seeded flips each side comes up 2000 ± 5% times."""
    sides = collections.Counter(
        coinflip.play(SERVER_SEED, "flip", nonce, 1, "heads").detail["side"]
        for nonce in range(4000)
    )
    assert set(sides) == set(coinflip.SIDES)
    assert all(abs(count - 2000) <= 100 for count in sides.values())


def test_coinflip_refuses_a_call_that_is_not_a_side() -> None:
    """A call other than heads or tails raises InvalidInput for the choice."""
    with pytest.raises(InvalidInput) as raised:
        coinflip.play(SERVER_SEED, "flip", 0, 5, "edge")
    assert raised.value.field == "choice"


# Dice.


def test_dice_number_guess_pays_six_times_on_a_match() -> None:
    """For every guess and face, a match pays 6x stake and anything else 0."""
    for guess, face in itertools.product(range(1, 7), repeat=2):
        outcome = dice.resolve(4, "number", guess, (face,))
        assert outcome.payout == (24 if guess == face else 0)
        assert_consistent(outcome, 4)


def test_dice_over_under_pays_even_money_and_seven_loses_both() -> None:
    """Over wins above 7, under below 7, and a total of 7 loses both bets."""
    for roll in itertools.product(range(1, 7), repeat=2):
        total = sum(roll)
        over = dice.resolve(10, "over", None, roll)
        under = dice.resolve(10, "under", None, roll)
        assert over.payout == (20 if total > 7 else 0)
        assert under.payout == (20 if total < 7 else 0)
        assert over.detail["total"] == total
        if total == 7:
            assert over.result == under.result == "loss"


def test_dice_rtp_is_exact_by_enumeration() -> None:
    """A number guess returns exactly 1 and over or under exactly 5/6."""
    for guess in range(1, 7):
        outcomes = [dice.resolve(1, "number", guess, (face,)) for face in range(1, 7)]
        assert enumerated_rtp(outcomes, 1) == Fraction(1)
    for bet in ("over", "under"):
        rolls = itertools.product(range(1, 7), repeat=2)
        outcomes = [dice.resolve(1, bet, None, roll) for roll in rolls]
        assert enumerated_rtp(outcomes, 1) == Fraction(5, 6)
    assert [dice.rtp(bet) for bet in dice.BETS] == [Fraction(1), Fraction(5, 6), Fraction(5, 6)]


@given(nonces, stakes, st.sampled_from(["number", "over", "under"]))
def test_dice_play_rolls_real_dice(nonce: int, stake: int, bet: str) -> None:
    """Played dice are faces 1 to 6, one die for a guess and two for over or under."""
    number = 3 if bet == "number" else None
    outcome = dice.play(SERVER_SEED, "dice", nonce, stake, bet, number)
    rolled = outcome.detail["dice"]
    assert len(rolled) == dice.dice_count(bet) and all(1 <= die <= 6 for die in rolled)
    assert outcome == dice.resolve(stake, bet, number, tuple(rolled))
    assert_consistent(outcome, stake)


@pytest.mark.parametrize(
    ("bet", "number", "field"),
    [
        ("number", 0, "number"),
        ("number", 7, "number"),
        ("number", None, "number"),
        ("number", True, "number"),
        ("over", 3, "number"),
        ("seven", None, "bet"),
    ],
)
def test_dice_refuses_bad_bets(bet: str, number: int | None, field: str) -> None:
    """A guess outside 1 to 6, a stray number or an unknown bet raises InvalidInput."""
    with pytest.raises(InvalidInput) as raised:
        dice.play(SERVER_SEED, "dice", 0, 5, bet, number)
    assert raised.value.field == field


# Slots.


def test_slots_rtp_is_the_exact_published_figure() -> None:
    """The pay table and reel weights return exactly 3935/4096 (about 96.07%)."""
    assert slots.rtp() == Fraction(3935, 4096)
    assert 0.95 <= float(slots.rtp()) <= 0.97


def test_slots_rtp_agrees_with_every_reel_stop() -> None:
    """Enumerating all 32**3 reel stops gives the same return as rtp()."""
    stops = range(len(slots.REEL))
    paid = sum(slots.resolve(1, spin).payout for spin in itertools.product(stops, repeat=3))
    assert Fraction(paid, len(slots.REEL) ** 3) == slots.rtp()


def test_slots_pay_table_reads_top_down() -> None:
    """Three cherries pay their own row, two or one leading cherries the lower rows."""
    assert slots.payout_multiple(("cherry", "cherry", "cherry")) == 10
    assert slots.payout_multiple(("cherry", "cherry", "bell")) == 4
    assert slots.payout_multiple(("cherry", "bell", "cherry")) == 2
    assert slots.payout_multiple(("bell", "cherry", "cherry")) == 0
    assert slots.payout_multiple(("diamond", "diamond", "diamond")) == 250
    assert slots.payout_multiple(("diamond", "diamond", "seven")) == 0


def test_slots_reel_has_each_symbol_its_weight_times() -> None:
    """The reel strip holds each symbol exactly as many times as its published weight."""
    assert collections.Counter(slots.REEL) == {
        symbol: weight for symbol, (_, weight) in slots.SYMBOLS.items()
    }


def test_slots_pay_table_text_prints_every_row_and_the_rtp() -> None:
    """The printable table publishes the reel strip, then one line per row and the return."""
    text = slots.paytable_text()
    assert len(text.splitlines()) == len(slots.PAYTABLE) + 2
    assert text.splitlines()[0] == slots.reel_text()
    assert "pays 250×" in text and "96.07%" in text


def test_the_published_reel_text_rebuilds_the_reel_strip() -> None:
    """Reading the reel text's runs of stops back gives exactly the strip every reel uses."""
    rebuilt: list[str] = []
    for first, last, symbol in re.findall(r"(\d+)–(\d+) \S+ (\w+)", slots.reel_text()):
        assert int(first) == len(rebuilt)
        rebuilt += [symbol] * (int(last) - int(first) + 1)
    assert tuple(rebuilt) == slots.REEL


@given(nonces, stakes)
def test_slots_play_matches_its_stops(nonce: int, stake: int) -> None:
    """A played spin's payout is the pay-table multiple of the symbols it shows."""
    outcome = slots.play(SERVER_SEED, "slots", nonce, stake)
    symbols = tuple(slots.REEL[stop] for stop in outcome.detail["stops"])
    assert list(symbols) == outcome.detail["symbols"]
    assert outcome.payout == slots.payout_multiple(symbols) * stake
    assert_consistent(outcome, stake)


# Roulette.


def test_roulette_red_and_black_split_the_numbers() -> None:
    """18 reds, 18 blacks and a green zero, with standard reds such as 1, 19 and 36."""
    colors = collections.Counter(roulette.color(pocket) for pocket in range(37))
    assert colors == {"red": 18, "black": 18, "green": 1}
    assert {1, 3, 19, 36} <= roulette.RED and not {2, 10, 11, 20, 29} & roulette.RED


def test_every_roulette_bet_returns_36_in_37() -> None:
    """Enumerating all 37 pockets for every bet gives a return of exactly 36/37."""
    assert len(roulette.ALL_BETS) == 37 + 6 + 3 + 3
    for bet, number in roulette.ALL_BETS:
        outcomes = [roulette.resolve(2, bet, number, pocket) for pocket in range(37)]
        assert enumerated_rtp(outcomes, 2) == Fraction(36, 37), (bet, number)


def test_zero_loses_every_outside_bet_and_pays_a_straight_zero() -> None:
    """Only a straight bet on 0 wins when the ball lands on zero, paying 36x."""
    for bet, number in roulette.ALL_BETS:
        outcome = roulette.resolve(5, bet, number, 0)
        assert outcome.payout == (180 if (bet, number) == ("straight", 0) else 0)


def test_roulette_bets_cover_their_published_numbers() -> None:
    """Each bet wins on exactly its numbers, checked against plain definitions."""
    covers = {
        ("red", None): roulette.RED,
        ("black", None): set(range(1, 37)) - roulette.RED,
        ("odd", None): set(range(1, 37, 2)),
        ("even", None): set(range(2, 37, 2)),
        ("low", None): set(range(1, 19)),
        ("high", None): set(range(19, 37)),
        ("dozen", 1): set(range(1, 13)),
        ("dozen", 2): set(range(13, 25)),
        ("dozen", 3): set(range(25, 37)),
        ("column", 1): set(range(1, 37, 3)),
        ("column", 2): set(range(2, 37, 3)),
        ("column", 3): set(range(3, 37, 3)),
    } | {("straight", n): {n} for n in range(37)}
    for (bet, number), numbers in covers.items():
        won = {pocket for pocket in range(37) if roulette.wins(bet, number, pocket)}
        assert won == numbers, (bet, number)
        multiple = roulette.PAYOUT_MULTIPLES[bet]
        assert multiple == 36 // len(numbers)


@pytest.mark.parametrize(
    ("bet", "number", "field", "words"),
    [
        ("straight", 37, "number", "0 to 36"),
        ("straight", -1, "number", "0 to 36"),
        ("straight", None, "number", "0 to 36"),
        ("dozen", 4, "number", "1 to 3"),
        ("column", 0, "number", "1 to 3"),
        ("red", 5, "number", "no number"),
        ("green", None, "bet", "straight"),
    ],
)
def test_roulette_refuses_bad_bets(bet: str, number: int | None, field: str, words: str) -> None:
    """A number out of its bet's range, a stray number or an unknown bet is refused."""
    with pytest.raises(InvalidInput) as raised:
        roulette.play(SERVER_SEED, "wheel", 0, 5, bet, number)
    assert raised.value.field == field and words in str(raised.value)


@given(nonces, stakes, st.sampled_from(roulette.ALL_BETS))
def test_roulette_play_lands_in_a_pocket(
    nonce: int, stake: int, bet: tuple[str, int | None]
) -> None:
    """A spin lands in 0 to 36 and pays what resolve says for that pocket."""
    outcome = roulette.play(SERVER_SEED, "wheel", nonce, stake, *bet)
    assert 0 <= outcome.detail["pocket"] <= 36
    assert outcome == roulette.resolve(stake, *bet, outcome.detail["pocket"])
    assert_consistent(outcome, stake)


# Shared: stakes, params, verify and the RTP figures.


@pytest.mark.parametrize("stake", [0, -5, True, 2.5, "10", stake_coins_max + 1])
def test_every_game_refuses_a_bad_stake(stake: Any) -> None:
    """A stake that is not a whole number in range raises InvalidAmount."""
    for kind, params, _ in SIMPLE_GAMES:
        with pytest.raises(InvalidAmount):
            rules.play(kind, SERVER_SEED, "x", 0, params | {"stake": stake})


def test_the_largest_payout_stays_below_the_balance_ceiling() -> None:
    """No game pays more than payout_multiple_max times its stake, so payouts fit int64."""
    assert stake_coins_max * payout_multiple_max < 2**63
    assert max(multiple for _, multiple in slots.PAYTABLE) <= payout_multiple_max
    assert max(roulette.PAYOUT_MULTIPLES.values()) <= payout_multiple_max


@pytest.mark.parametrize(("kind", "params", "typed_play"), SIMPLE_GAMES)
def test_verify_recomputes_the_played_outcome(
    kind: str, params: dict[str, Any], typed_play: Callable[[Seeds], Settlement]
) -> None:
    """verify from the revealed seeds and the stored params equals the typed game's result."""
    for nonce in range(50):
        seeds = (rules.new_server_seed(), f"client-{nonce}", nonce)
        stored = msgpack.unpackb(msgpack.packb(params))
        assert rules.verify(kind, *seeds, stored) == typed_play(seeds).to_record()


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("poker", {"stake": 1}, "kind"),
        ("coinflip", {"stake": 1}, "choice"),
        ("slots", {"stake": 1, "bet": "red"}, "bet"),
        ("dice", {"bet": "over"}, "stake"),
        ("roulette", {"stake": 1, "bet": "dozen"}, "number"),
    ],
)
def test_check_params_names_the_bad_field(kind: str, params: dict[str, Any], field: str) -> None:
    """A missing, unexpected or invalid parameter raises InvalidInput for that field."""
    with pytest.raises(InvalidInput) as raised:
        rules.check_params(kind, params)
    assert raised.value.field == field


def test_theoretical_rtp_is_exact_per_game_and_bet_kind() -> None:
    """The gauge has one exact figure per game and bet kind: dice's number bet returns 1."""
    figures = rules.theoretical_rtp()
    assert figures == {
        ("blackjack", "hand"): rules.blackjack.THEORETICAL_RTP,
        ("coinflip", "call"): 1.0,
        ("dice", "number"): 1.0,
        ("dice", "over"): 5 / 6,
        ("dice", "under"): 5 / 6,
        **{("roulette", bet): 36 / 37 for bet in roulette.PAYOUT_MULTIPLES},
        ("slots", "spin"): 3935 / 4096,
    }
    assert {kind for kind, _ in figures} == set(rules.KINDS)


@pytest.mark.parametrize(
    ("kind", "params", "bet"),
    [
        ("coinflip", {"stake": 1, "choice": "tails"}, "call"),
        ("dice", {"stake": 1, "bet": "number", "number": 2}, "number"),
        ("dice", {"stake": 1, "bet": "under"}, "under"),
        ("roulette", {"stake": 1, "bet": "dozen", "number": 2}, "dozen"),
        ("slots", {"stake": 1}, "spin"),
        ("blackjack", {"stake": 1, "actions": []}, "hand"),
    ],
)
def test_every_game_names_its_bet_kind(kind: str, params: dict[str, Any], bet: str) -> None:
    """bet_kind labels a game by the bet whose return it has, one of BET_KINDS."""
    assert rules.bet_kind(kind, params) == bet
    assert bet in rules.BET_KINDS[kind]
