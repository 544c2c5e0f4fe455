"""Tests of the blackjack rules: hand values, the dealer, stakes, payouts and replay."""

from __future__ import annotations

import collections
import hashlib
import itertools
import math
from collections.abc import Callable, Sequence
from fractions import Fraction

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.errors import CroupierError, InvalidInput
from actors.games import rules
from actors.games.rules import blackjack as bj
from actors.games.rules.blackjack import Action, BlackjackState, Hand

SERVER_SEED = "c3" * 32
TEN_RANKS = (9, 10, 11, 12)

server_seeds = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
client_seeds = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=64)


def card(rank: int, suit: int = 0) -> int:
    """The card of a rank index (0 is the ace, 12 the king) and a suit index."""
    return suit * 13 + rank


def ranks(*indices: int) -> tuple[int, ...]:
    """Cards of the given rank indices, in spades."""
    return tuple(card(index) for index in indices)


def oracle_value(cards: Sequence[int]) -> tuple[int, bool]:
    """The best total by trying every ace as 1 or 11, written independently of hand_value."""
    aces = sum(1 for c in cards if c % 13 == 0)
    base = sum(min(c % 13 + 1, 10) for c in cards if c % 13 != 0)
    totals = {base + sum(choice) for choice in itertools.product((1, 11), repeat=aces)}
    under = [total for total in totals if total <= 21]
    best = max(under) if under else min(totals)
    # Soft means the best total counts an ace as 11, so it could drop 10 without busting.
    soft = aces > 0 and best == base + aces + 10
    return best, soft


def table(
    hands: Sequence[tuple[int, ...]],
    dealer: tuple[int, ...],
    *,
    stake: int = 10,
    bets: Sequence[int] | None = None,
    settled: bool = False,
    nonce: int = 0,
) -> BlackjackState:
    """A state with chosen cards, for rules that depend on the cards alone."""
    bets = bets if bets is not None else [stake] * len(hands)
    placed = tuple(Hand(cards, bet) for cards, bet in zip(hands, bets, strict=True))
    active = len(placed) if settled else 0
    return BlackjackState(SERVER_SEED, "table", nonce, stake, dealer, placed, active, ())


def cards_on_table(state: BlackjackState) -> list[int]:
    """Every card dealt in a round, dealer and player."""
    return [*state.dealer, *(c for hand in state.hands for c in hand.cards)]


def check_invariants(state: BlackjackState) -> None:
    """Everything that must hold of any state reachable from a deal."""
    assert state.shoe_position == len(cards_on_table(state))
    shoe = bj.shoe(state.server_seed, state.client_seed, state.nonce)
    assert sorted(cards_on_table(state)) == sorted(shoe[: state.shoe_position])
    record = msgpack.unpackb(msgpack.packb(state.to_record()))
    assert BlackjackState.from_record(record) == state
    assert all(len(hand.cards) >= 2 for hand in state.hands)
    assert all(hand.bet in (state.stake, 2 * state.stake) for hand in state.hands)
    if not bj.is_settled(state):
        assert bj.hand_value(state.hands[state.active].cards)[0] < 21
        assert len(state.dealer) == 2
        return
    outcome = bj.settle(state)
    staked = bj.total_stake(state)
    # The most a round pays is a natural: 5/2 of the stake, plus half a coin rounded up.
    assert 0 <= 2 * outcome.payout <= 5 * staked + 1
    assert outcome.detail["staked"] == staked
    assert (
        rules.Settlement.from_record(msgpack.unpackb(msgpack.packb(outcome.to_record()))) == outcome
    )
    assert (
        bj.replay(state.server_seed, state.client_seed, state.nonce, state.stake, state.actions)
        == state
    )
    params = {"stake": state.stake, "actions": [str(a) for a in state.actions]}
    assert rules.verify("blackjack", state.server_seed, state.client_seed, state.nonce, params) == (
        outcome.to_record()
    )
    dealer_drew = len(state.dealer) > 2
    if dealer_drew:
        assert not bj.dealer_hits(state.dealer)
        assert all(bj.dealer_hits(state.dealer[:n]) for n in range(2, len(state.dealer)))


def play_round(
    state: BlackjackState, choose: Callable[[BlackjackState], Action]
) -> tuple[BlackjackState, int]:
    """Play a round to the end, checking invariants; return it and the extra coins escrowed."""
    escrowed = 0
    check_invariants(state)
    while not bj.is_settled(state):
        action = choose(state)
        extra = bj.extra_stake(state, action)
        before = bj.total_stake(state)
        following = bj.apply(state, action)
        assert following == bj.apply(state, action)
        assert bj.total_stake(following) == before + extra
        escrowed += extra
        state = following
        check_invariants(state)
    assert bj.total_stake(state) == state.stake + escrowed
    return state, escrowed


# Cards and hand values.


def test_card_labels_name_every_card_once() -> None:
    """The 52 cards have 52 distinct labels such as A♠, 10♥ and K♣."""
    labels = [bj.card_label(c) for c in range(52)]
    assert len(set(labels)) == 52
    assert (labels[card(0, 0)], labels[card(9, 1)], labels[card(12, 3)]) == ("A♠", "10♥", "K♣")


def test_every_two_card_hand_has_the_oracle_total_and_softness() -> None:
    """All 52 x 52 two-card hands match the ace-counting oracle."""
    for pair in itertools.product(range(52), repeat=2):
        assert bj.hand_value(pair) == oracle_value(pair), pair


def test_every_three_and_four_card_rank_combination_matches_the_oracle() -> None:
    """Every 3- and 4-card rank sequence, aces included, matches the oracle."""
    for size in (3, 4):
        for combo in itertools.product(range(13), repeat=size):
            cards = ranks(*combo)
            assert bj.hand_value(cards) == oracle_value(cards), combo


def test_natural_is_exactly_an_ace_and_a_ten_value_card() -> None:
    """Among all two-card hands only ace + 10/J/Q/K is a natural; three cards never are."""
    for pair in itertools.product(range(52), repeat=2):
        pair_ranks = sorted(c % 13 for c in pair)
        assert bj.is_natural(pair) == (pair_ranks[0] == 0 and pair_ranks[1] in TEN_RANKS)
    assert not bj.is_natural(ranks(0, 4, 4))


def test_hand_labels_show_cards_and_value() -> None:
    """A hand label lists the cards and says soft, a plain total or bust."""
    assert bj.hand_label(ranks(0, 5)) == "A♠ 6♠ (soft 17)"
    assert bj.hand_label(ranks(9, 6)) == "10♠ 7♠ (17)"
    assert bj.hand_label(ranks(12, 11, 1)) == "K♠ Q♠ 2♠ (bust)"


# The dealer.


def test_dealer_draws_to_17_and_stands_on_soft_17_from_every_start() -> None:
    """From every two-card start, every draw sequence hits below 17 and stands from 17."""
    seen_soft_17 = 0
    pending = [ranks(a, b) for a, b in itertools.combinations_with_replacement(range(10), 2)]
    while pending:
        cards = pending.pop()
        total, soft = oracle_value(cards)
        assert bj.dealer_hits(cards) == (total < 17), cards
        seen_soft_17 += total == 17 and soft
        if total < 17:
            pending.extend((*cards, card(rank)) for rank in range(10))
    assert seen_soft_17 > 0
    assert not bj.dealer_hits(ranks(0, 5)) and not bj.dealer_hits(ranks(0, 2, 3))
    assert bj.dealer_hits(ranks(9, 5)) and bj.dealer_hits(ranks(0, 4))


def test_dealer_hole_card_stays_hidden_until_settled() -> None:
    """Only the up card is visible while the player acts; all cards once settled."""
    live = table([ranks(9, 6)], ranks(4, 12))
    assert bj.dealer_visible(live) == ranks(4)
    done = bj.apply(live, Action.STAND)
    assert bj.dealer_visible(done) == done.dealer and len(done.dealer) >= 2


# Legal actions, doubles and splits.


def test_split_is_offered_exactly_for_equal_ranks() -> None:
    """For every pair of ranks in different suits, split is legal iff the ranks are equal."""
    for first, second in itertools.product(range(13), repeat=2):
        state = table([(card(first, 0), card(second, 1))], ranks(8, 7))
        legal = bj.legal_actions(state)
        assert (Action.SPLIT in legal) == (first == second), (first, second)
        assert {Action.HIT, Action.STAND, Action.DOUBLE} <= legal


def test_double_and_split_need_exactly_two_cards() -> None:
    """With three cards only hit and stand remain."""
    state = table([ranks(1, 1, 2)], ranks(8, 7))
    assert bj.legal_actions(state) == {Action.HIT, Action.STAND}


def test_double_escrows_the_bet_and_takes_exactly_one_card() -> None:
    """A double needs one more stake, doubles the bet, draws one card and ends the hand."""
    state = table([ranks(4, 5)], ranks(8, 7), stake=25)
    assert bj.extra_stake(state, Action.DOUBLE) == 25
    doubled = bj.apply(state, Action.DOUBLE)
    assert doubled.hands[0].bet == 50 and len(doubled.hands[0].cards) == 3
    assert bj.is_settled(doubled) and bj.total_stake(doubled) == 50


def test_hit_and_stand_need_no_extra_stake() -> None:
    """Hit and stand escrow nothing."""
    state = table([ranks(4, 5)], ranks(8, 7))
    assert bj.extra_stake(state, Action.HIT) == bj.extra_stake(state, Action.STAND) == 0


def test_split_escrows_a_second_stake_and_deals_to_both_hands() -> None:
    """A split needs one more stake and makes two hands of one original card plus one each."""
    state = table([(card(7, 0), card(7, 2))], ranks(8, 7), stake=30)
    assert bj.extra_stake(state, Action.SPLIT) == 30
    split = bj.apply(state, Action.SPLIT)
    assert [hand.cards[0] for hand in split.hands] == [card(7, 0), card(7, 2)]
    assert [len(hand.cards) for hand in split.hands] == [2, 2]
    assert [hand.bet for hand in split.hands] == [30, 30] and bj.total_stake(split) == 60
    if not bj.is_settled(split):
        assert Action.SPLIT not in bj.legal_actions(split)


def test_double_after_split_doubles_only_that_hand() -> None:
    """Doubling the first split hand raises its bet alone and moves play to the second."""
    for nonce in range(100):
        split = bj.apply(table([ranks(7, 7)], ranks(8, 7), stake=30, nonce=nonce), Action.SPLIT)
        if split.active == 0:
            break
    else:
        pytest.fail("no seed in 100 left the first split hand in play")
    assert bj.extra_stake(split, Action.DOUBLE) == 30
    doubled = bj.apply(split, Action.DOUBLE)
    assert [hand.bet for hand in doubled.hands] == [60, 30]
    assert len(doubled.hands[0].cards) == 3 and bj.total_stake(doubled) == 90
    assert doubled.active >= 1


def test_split_aces_take_one_card_each_and_stand() -> None:
    """Split aces get exactly one card each and the round ends with no more actions."""
    state = table([(card(0, 0), card(0, 3))], ranks(8, 7))
    split = bj.apply(state, Action.SPLIT)
    assert [len(hand.cards) for hand in split.hands] == [2, 2]
    assert bj.is_settled(split) and bj.legal_actions(split) == frozenset()
    assert bj.total_stake(split) == 20


def test_a_hand_at_21_stands_by_itself() -> None:
    """A hit that reaches 21 ends the hand without a stand."""
    for nonce in range(200):
        hit = bj.apply(table([ranks(4, 5)], ranks(8, 7), nonce=nonce), Action.HIT)
        if bj.hand_value(hit.hands[0].cards)[0] == 21:
            assert bj.is_settled(hit)
            return
    pytest.fail("no seed in 200 drew a ten to 11")


# Errors.


def test_illegal_actions_raise_a_typed_error_listing_the_legal_ones() -> None:
    """Splitting a non-pair raises IllegalMove with its code and the legal actions."""
    state = table([ranks(12, 11)], ranks(8, 7))
    with pytest.raises(bj.IllegalMove) as raised:
        bj.apply(state, Action.SPLIT)
    assert isinstance(raised.value, CroupierError) and raised.value.code == "illegal_move"
    assert raised.value.legal == {Action.HIT, Action.STAND, Action.DOUBLE}
    assert "double or hit or stand" in str(raised.value)
    with pytest.raises(bj.IllegalMove):
        bj.extra_stake(state, Action.SPLIT)


def test_no_action_is_legal_once_settled() -> None:
    """Every action on a settled round raises IllegalMove saying the round is over."""
    settled = table([ranks(12, 11)], ranks(8, 7), settled=True)
    for action in Action:
        with pytest.raises(bj.IllegalMove, match="round is over"):
            bj.apply(settled, action)


def test_unknown_action_names_are_invalid_input() -> None:
    """A button sending an unknown action name gets InvalidInput for the action field."""
    assert bj.parse_action("double") is Action.DOUBLE
    with pytest.raises(InvalidInput) as raised:
        bj.parse_action("surrender")
    assert raised.value.field == "action"


def test_deal_refuses_a_bad_stake_or_seed() -> None:
    """A zero stake or a malformed seed is refused before any card is dealt."""
    with pytest.raises(InvalidInput) as raised:
        bj.deal(SERVER_SEED, "c", 0, 0)
    assert raised.value.field == "stake"
    with pytest.raises(InvalidInput) as raised:
        bj.deal("nothex", "c", 0, 10)
    assert raised.value.field == "server_seed"


# Settlement.


def case(
    name: str,
    hands: list[tuple[int, ...]],
    dealer: tuple[int, ...],
    bets: list[int],
    payout: int,
    results: list[str],
) -> object:
    """One settlement case; the stake is 10 unless the only bet says otherwise."""
    stake = bets[0] if bets == [5] else 10
    return pytest.param(hands, dealer, stake, bets, payout, results, id=name)


@pytest.mark.parametrize(
    ("hands", "dealer", "stake", "bets", "payout", "results"),
    [
        case("win", [ranks(9, 8)], ranks(9, 6), [10], 20, ["win"]),
        case("loss", [ranks(9, 6)], ranks(9, 8), [10], 0, ["loss"]),
        case("push", [ranks(9, 7)], ranks(8, 8), [10], 10, ["push"]),
        case("bust-loses-to-busted-dealer", [ranks(9, 5, 9)], ranks(9, 4, 12), [10], 0, ["bust"]),
        case("dealer-bust", [ranks(9, 1)], ranks(9, 5, 8), [10], 20, ["win"]),
        case("natural-3-to-2", [ranks(0, 12)], ranks(9, 8), [10], 25, ["natural"]),
        case("natural-odd-stake-rounds-up", [ranks(0, 10)], ranks(9, 8), [5], 13, ["natural"]),
        case("both-naturals-push", [ranks(0, 9)], ranks(12, 0), [10], 10, ["push"]),
        case("dealer-natural", [ranks(9, 9)], ranks(12, 0), [10], 0, ["loss"]),
        case("double-win", [ranks(4, 2, 9)], ranks(9, 6), [20], 40, ["win"]),
        case("double-push", [ranks(4, 2, 9)], ranks(9, 2, 4), [20], 20, ["push"]),
        case(
            "split-win-loss", [ranks(9, 8), ranks(9, 4)], ranks(9, 7), [10, 10], 20, ["win", "loss"]
        ),
        case(
            "split-21-is-not-natural",
            [ranks(0, 12), ranks(0, 5)],
            ranks(9, 8),
            [10, 10],
            20,
            ["win", "loss"],
        ),
        case(
            "split-21s-push-dealer-21",
            [ranks(0, 12), ranks(0, 9)],
            ranks(9, 2, 7),
            [10, 10],
            20,
            ["push", "push"],
        ),
        case(
            "split-double-and-bust",
            [ranks(7, 2, 9), ranks(7, 9, 5)],
            ranks(9, 6),
            [20, 10],
            40,
            ["win", "bust"],
        ),
    ],
)
def test_settle_pays_each_hand_by_the_rules(
    hands: list[tuple[int, ...]],
    dealer: tuple[int, ...],
    stake: int,
    bets: list[int],
    payout: int,
    results: list[str],
) -> None:
    """Settlement pays 1:1 wins, returns pushes, pays naturals 3:2 rounded up, sums hands."""
    outcome = bj.settle(table(hands, dealer, stake=stake, bets=bets, settled=True))
    assert outcome.payout == payout
    assert [hand["result"] for hand in outcome.detail["hands"]] == results
    assert sum(hand["payout"] for hand in outcome.detail["hands"]) == payout
    staked = sum(bets)
    assert outcome.detail["staked"] == staked
    assert outcome.result == ("win" if payout > staked else "push" if payout == staked else "loss")


def test_naturals_are_settled_at_the_deal() -> None:
    """A player or dealer natural ends the round at the deal: 3:2, a push or a loss."""
    seen: set[str] = set()
    for nonce in range(2000):
        state = bj.deal(SERVER_SEED, "naturals", nonce, 10)
        player, dealer = bj.is_natural(state.hands[0].cards), bj.is_natural(state.dealer)
        assert bj.is_settled(state) == (player or dealer)
        if not bj.is_settled(state):
            continue
        assert state.shoe_position == 4
        result = bj.settle(state).detail["hands"][0]["result"]
        expected = "push" if player and dealer else "natural" if player else "loss"
        assert result == expected
        seen.add(expected)
    assert seen == {"push", "natural", "loss"}


def test_a_settled_summary_names_every_hand() -> None:
    """The one-line text shows the dealer and every hand with its result after a split."""
    state = table([ranks(9, 8), ranks(9, 4)], ranks(9, 7), settled=True)
    text = bj.settle(state).text
    assert text.startswith("Dealer 10♠ 8♠ (18); hand 1 10♠ 9♠ (19) win, hand 2 10♠ 5♠ (15) loss")
    assert "\n" not in text


def test_rules_text_states_the_table_rules() -> None:
    """The printable rules mention the decks, S17, 3:2, peeking, doubles and splits."""
    text = bj.rules_text()
    for words in ("6 decks", "stands on soft 17", "3:2", "peeks", "Double", "Split once"):
        assert words in text


# Random play, replay and determinism.


@settings(max_examples=500, deadline=None)
@given(
    server_seeds,
    client_seeds,
    st.integers(min_value=0, max_value=2**63 - 1),
    st.integers(min_value=1, max_value=10**15),
    st.lists(st.integers(min_value=0, max_value=3), max_size=12),
)
def test_random_play_keeps_every_invariant(
    server_seed: str, client_seed: str, nonce: int, stake: int, choices: list[int]
) -> None:
    """Random legal actions, then stands when idle, never break any state invariant."""
    pending = iter(choices)

    def choose(state: BlackjackState) -> Action:
        legal = sorted(bj.legal_actions(state))
        choice = next(pending, None)
        return bj.timeout_action(state) if choice is None else legal[choice % len(legal)]

    play_round(bj.deal(server_seed, client_seed, nonce, stake), choose)


def test_rounds_that_split_and_double_whenever_legal_keep_every_invariant() -> None:
    """Over 600 seeded rounds that split, then double, whenever legal, the invariants hold."""
    splits = doubles = 0

    def choose(state: BlackjackState) -> Action:
        legal = bj.legal_actions(state)
        for action in (Action.SPLIT, Action.DOUBLE, Action.HIT):
            if action in legal:
                return action
        raise AssertionError(legal)

    for nonce in range(600):
        state, _ = play_round(bj.deal(SERVER_SEED, "aggressive", nonce, 7), choose)
        splits += len(state.hands) == 2
        doubles += any(hand.bet == 14 for hand in state.hands)
    assert splits > 20 and doubles > 300


def test_replay_of_an_unfinished_round_is_refused_by_verify() -> None:
    """verify refuses actions that leave the round unfinished or are illegal."""
    nonce = next(n for n in range(100) if not bj.is_settled(bj.deal(SERVER_SEED, "v", n, 10)))
    with pytest.raises(InvalidInput) as raised:
        rules.verify("blackjack", SERVER_SEED, "v", nonce, {"stake": 10, "actions": []})
    assert raised.value.field == "actions"
    with pytest.raises(bj.IllegalMove):
        rules.verify("blackjack", SERVER_SEED, "v", nonce, {"stake": 10, "actions": ["stand"] * 3})


def test_the_shoe_is_six_full_decks_fixed_by_the_seeds() -> None:
    """The shoe holds each card six times and is equal for equal seeds only."""
    shoe = bj.shoe(SERVER_SEED, "shoe", 1)
    assert collections.Counter(shoe) == {c: 6 for c in range(52)}
    assert shoe == bj.shoe(SERVER_SEED, "shoe", 1) != bj.shoe(SERVER_SEED, "shoe", 2)


# Return to player.


def basic_strategy(state: BlackjackState) -> Action:
    """Basic strategy for 6 decks, S17, double after split (standard published charts).

    Pairs: always split aces and eights; 9s against 2-6 and 8-9; 7s, 2s and 3s against
    2-7; 6s against 2-6; 4s against 5-6. Soft: double A7 against 3-6 (else stand against
    2, 7, 8, hit against 9-A), A6 against 3-6, A4-A5 against 4-6, A2-A3 against 5-6, and
    stand on soft 19 up. Hard: stand on 17 up, on 13-16 against 2-6, on 12 against 4-6;
    double 11 against 2-10, 10 against 2-9, 9 against 3-6; otherwise hit.
    """
    legal = bj.legal_actions(state)
    cards = state.hands[state.active].cards
    up = bj.card_value(state.dealer[0])
    up = 11 if up == 1 else up
    pair_splits = {
        1: range(2, 12),
        8: range(2, 12),
        9: (2, 3, 4, 5, 6, 8, 9),
        7: range(2, 8),
        2: range(2, 8),
        3: range(2, 8),
        6: range(2, 7),
        4: (5, 6),
    }
    if Action.SPLIT in legal and up in pair_splits.get(bj.card_value(cards[0]), ()):
        return Action.SPLIT
    total, soft = bj.hand_value(cards)
    can_double = Action.DOUBLE in legal
    if soft:
        doubles = {
            18: range(3, 7),
            17: range(3, 7),
            16: range(4, 7),
            15: range(4, 7),
            14: (5, 6),
            13: (5, 6),
        }
        if can_double and up in doubles.get(total, ()):
            return Action.DOUBLE
        if total >= 19 or (total == 18 and up in (2, 3, 4, 5, 6, 7, 8)):
            return Action.STAND
        return Action.HIT
    doubles = {11: range(2, 11), 10: range(2, 10), 9: range(3, 7)}
    if can_double and up in doubles.get(total, ()):
        return Action.DOUBLE
    if total >= 17 or (13 <= total <= 16 and up <= 6) or (total == 12 and 4 <= up <= 6):
        return Action.STAND
    return Action.HIT


def test_basic_strategy_simulation_agrees_with_the_documented_rtp() -> None:
    """100000 seeded basic-strategy rounds return THEORETICAL_RTP within 3.5 standard errors.

    The return is per coin of initial stake, as published house edges are. The figure was
    measured on other seeds (3,000,000 rounds), not fitted to this run; a natural paid 1:1
    instead of 3:2 (about 2.3% less) would move the estimate out of the band.
    """
    rounds = 100_000
    server_seed = hashlib.sha256(b"croupier blackjack rtp").hexdigest()
    net = []
    for nonce in range(rounds):
        state = bj.deal(server_seed, "rtp", nonce, 2)
        while not bj.is_settled(state):
            state = bj.apply(state, basic_strategy(state))
        net.append((bj.settle(state).payout - bj.total_stake(state)) / 2)
    mean = sum(net) / rounds
    error = math.sqrt(sum((x - mean) ** 2 for x in net) / (rounds - 1) / rounds)
    assert error < 0.004
    assert abs(1 + mean - bj.THEORETICAL_RTP) <= 3.5 * error, (1 + mean, error)


def test_the_natural_probability_is_the_enumerated_one() -> None:
    """Enumerating every rank of the four dealt cards gives natural_paid_probability."""
    counts = {rank: 4 * bj.RULES.decks for rank in range(13)}
    paid = Fraction(0)
    for ranks_dealt in itertools.product(range(13), repeat=4):
        chance, left, remaining = Fraction(1), dict(counts), 13 * 4 * bj.RULES.decks
        for rank in ranks_dealt:
            chance *= Fraction(left[rank], remaining)
            left[rank] -= 1
            remaining -= 1
        player, dealer = ranks_dealt[0::2], ranks_dealt[1::2]
        if bj.is_natural(player) and not bj.is_natural(dealer):
            paid += chance
    assert paid == bj.natural_paid_probability() == Fraction(585088, 12909299)


def test_an_odd_stake_returns_its_rounded_up_naturals_on_top() -> None:
    """On the same 6000 seeded rounds, stake 1 returns stake 2's figure plus half a coin per
    paid natural, and the paid naturals occur at natural_paid_probability's rate."""
    rounds, naturals, returned = 6_000, 0, {1: 0, 2: 0}
    server_seed = hashlib.sha256(b"croupier odd stakes").hexdigest()
    for nonce in range(rounds):
        for stake in (1, 2):
            state = bj.deal(server_seed, "odd", nonce, stake)
            while not bj.is_settled(state):
                state = bj.apply(state, basic_strategy(state))
            outcome = bj.settle(state)
            returned[stake] += outcome.payout - bj.total_stake(state)
        naturals += outcome.detail["hands"][0]["result"] == "natural"
    assert Fraction(returned[1]) == Fraction(returned[2], 2) + Fraction(naturals, 2)
    p = float(bj.natural_paid_probability())
    assert abs(naturals / rounds - p) <= 4 * math.sqrt(p * (1 - p) / rounds)
    assert bj.rtp(2) == bj.THEORETICAL_RTP
    assert bj.rtp(1) - bj.rtp(2) == pytest.approx(p / 2)
    assert bj.rtp(3) - bj.rtp(2) == pytest.approx(p / 6)
