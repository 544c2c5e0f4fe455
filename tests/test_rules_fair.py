"""Tests of the provably fair stream: commitments, draws and shuffles."""

from __future__ import annotations

import collections
import hashlib
import hmac
import itertools
import string
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.errors import InvalidInput
from actors.games.rules.fair import (
    FairStream,
    check_seeds,
    new_server_seed,
    seed_hash,
)
from limits import client_seed_chars_max, nonce_max

SERVER_SEED = "0f" * 32

server_seeds = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
client_seeds = st.text(
    alphabet=string.ascii_letters + string.digits + ":-_ ", min_size=1, max_size=64
)
nonces = st.integers(min_value=0, max_value=nonce_max)


def reference_chunks(server_seed: str, client_seed: str, nonce: int) -> Iterator[int]:
    """The stream as the module docstring publishes it, written independently."""
    for counter in itertools.count():
        message = f"{client_seed}:{nonce}:{counter}".encode()
        block = hmac.new(server_seed.encode(), message, hashlib.sha256).digest()
        for offset in range(0, 32, 4):
            yield int.from_bytes(block[offset : offset + 4], "big")


def reference_randbelow(chunks: Iterator[int], n: int) -> int:
    """Rejection sampling as published: reject chunks at or above the top multiple of n."""
    limit = (2**32 // n) * n
    return next(chunk for chunk in chunks if chunk < limit) % n


def test_new_server_seed_is_fresh_hex() -> None:
    """A new server seed is 64 lowercase hex digits and two seeds differ."""
    seed = new_server_seed()
    assert len(seed) == 64 and set(seed) <= set("0123456789abcdef")
    assert seed != new_server_seed()
    check_seeds(seed, "player", 0)


def test_seed_hash_is_sha256_of_the_seed_text() -> None:
    """The commitment is the SHA-256 hex digest of the seed's text."""
    assert seed_hash(SERVER_SEED) == hashlib.sha256(SERVER_SEED.encode()).hexdigest()
    assert seed_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_full_range_draws_are_the_published_hmac_chunks() -> None:
    """randbelow(2**32) returns the HMAC chunks in order, across several blocks."""
    stream = FairStream(SERVER_SEED, "player", 7)
    expected = list(itertools.islice(reference_chunks(SERVER_SEED, "player", 7), 30))
    assert [stream.randbelow(2**32) for _ in range(30)] == expected


@pytest.mark.parametrize("n", [1, 2, 3, 6, 37, 312, 10**9, 2**31 + 1, 3 * 2**30, 2**32 - 1])
def test_randbelow_matches_the_published_rejection_sampling(n: int) -> None:
    """randbelow(n) equals the reference rejection sampler, including near-2**32 sizes."""
    stream = FairStream(SERVER_SEED, "player", 11)
    chunks = reference_chunks(SERVER_SEED, "player", 11)
    assert [stream.randbelow(n) for _ in range(200)] == [
        reference_randbelow(chunks, n) for _ in range(200)
    ]


def test_randbelow_rejects_sizes_it_cannot_draw() -> None:
    """Sizes of 0 or above 2**32 are refused rather than drawn with a bias."""
    stream = FairStream(SERVER_SEED, "player", 0)
    for n in (0, -1, 2**32 + 1):
        with pytest.raises(ValueError):
            stream.randbelow(n)


@given(server_seeds, client_seeds, nonces, st.integers(min_value=1, max_value=2**32))
def test_randbelow_is_in_range_and_deterministic(
    server_seed: str, client_seed: str, nonce: int, n: int
) -> None:
    """Every draw is in [0, n) and equal inputs give equal draws."""
    first = FairStream(server_seed, client_seed, nonce)
    second = FairStream(server_seed, client_seed, nonce)
    draws = [first.randbelow(n) for _ in range(20)]
    assert all(0 <= draw < n for draw in draws)
    assert draws == [second.randbelow(n) for _ in range(20)]


@given(server_seeds, client_seeds, nonces, st.lists(st.integers(), max_size=80))
def test_shuffle_is_a_deterministic_permutation(
    server_seed: str, client_seed: str, nonce: int, items: list[int]
) -> None:
    """shuffle returns the same items in an order fixed by the seeds."""
    shuffled = FairStream(server_seed, client_seed, nonce).shuffle(items)
    assert sorted(shuffled) == sorted(items)
    assert shuffled == FairStream(server_seed, client_seed, nonce).shuffle(items)


@given(server_seeds, client_seeds, nonces, st.integers(min_value=0, max_value=40))
def test_a_shuffle_prefix_needs_no_more_than_its_own_draws(
    server_seed: str, client_seed: str, nonce: int, count: int
) -> None:
    """The first cards of iter_shuffle equal the first cards of the whole shuffle."""
    items = list(range(40))
    whole = FairStream(server_seed, client_seed, nonce).shuffle(items)
    lazy = FairStream(server_seed, client_seed, nonce).iter_shuffle(items)
    assert list(itertools.islice(lazy, count)) == whole[:count]


def test_shuffle_is_forward_fisher_yates_on_the_published_draws() -> None:
    """The shuffle swaps position i with i + randbelow(len - i), as documented."""
    items = list(range(52))
    expected = list(items)
    chunks = reference_chunks(SERVER_SEED, "deck", 3)
    for i in range(len(expected) - 1):
        j = i + reference_randbelow(chunks, len(expected) - i)
        expected[i], expected[j] = expected[j], expected[i]
    assert FairStream(SERVER_SEED, "deck", 3).shuffle(items) == expected


def test_shuffles_of_three_items_are_close_to_uniform() -> None:
    """Over 12000 seeded shuffles every order of three items appears 2000 ± 6% times."""
    counts = collections.Counter(
        tuple(FairStream(SERVER_SEED, "uniform", nonce).shuffle("abc")) for nonce in range(12_000)
    )
    assert len(counts) == 6
    assert all(abs(count - 2000) <= 120 for count in counts.values()), counts


def test_each_seed_changes_the_stream() -> None:
    """Changing the server seed, the client seed or the nonce changes the draws."""
    base = [FairStream(SERVER_SEED, "player", 1).randbelow(2**32) for _ in range(4)]
    for seeds in (
        ("1e" * 32, "player", 1),
        (SERVER_SEED, "player2", 1),
        (SERVER_SEED, "player", 2),
    ):
        stream = FairStream(*seeds)
        assert [stream.randbelow(2**32) for _ in range(4)] != base


@pytest.mark.parametrize(
    ("server_seed", "client_seed", "nonce", "field"),
    [
        ("0f" * 31, "player", 0, "server_seed"),
        ("0F" * 32, "player", 0, "server_seed"),
        ("zz" * 32, "player", 0, "server_seed"),
        (None, "player", 0, "server_seed"),
        (SERVER_SEED, "", 0, "client_seed"),
        (SERVER_SEED, "x" * (client_seed_chars_max + 1), 0, "client_seed"),
        (SERVER_SEED, "tab\there", 0, "client_seed"),
        (SERVER_SEED, 5, 0, "client_seed"),
        (SERVER_SEED, "player", -1, "nonce"),
        (SERVER_SEED, "player", nonce_max + 1, "nonce"),
        (SERVER_SEED, "player", True, "nonce"),
        (SERVER_SEED, "player", "3", "nonce"),
    ],
)
def test_malformed_seeds_are_refused_naming_the_field(
    server_seed: object, client_seed: object, nonce: object, field: str
) -> None:
    """Each malformed seed value raises InvalidInput for its own field."""
    with pytest.raises(InvalidInput) as raised:
        check_seeds(server_seed, client_seed, nonce)
    assert raised.value.field == field
    assert raised.value.code == "invalid_input"
