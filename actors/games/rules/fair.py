"""Provably fair randomness: a committed server seed, a player's client seed and a nonce.

At the start of a game the player sees ``seed_hash(server_seed)``; when it ends the server
reveals ``server_seed``. Anyone can then check the hash and recompute every random draw:
block ``counter`` of the stream is HMAC-SHA256 with the server seed's text (UTF-8) as key and
``f"{client_seed}:{nonce}:{counter}"`` (UTF-8) as message, for counter 0, 1, 2, ... Each
32-byte block is read as eight big-endian unsigned 32-bit chunks, in order.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from collections.abc import Iterator, Sequence
from typing import TypeVar

from actors.errors import InvalidInput
from limits import client_seed_chars_max, nonce_max

T = TypeVar("T")

server_seed_chars = 64

_chunk_bytes = 4
_chunk_range = 2**32


def new_server_seed() -> str:
    """A fresh secret server seed: 32 random bytes as 64 lowercase hex digits."""
    return secrets.token_hex(32)


def seed_hash(server_seed: str) -> str:
    """The commitment shown to the player before the game: SHA-256 of the seed, in hex."""
    return hashlib.sha256(server_seed.encode()).hexdigest()


def check_seeds(server_seed: object, client_seed: object, nonce: object) -> None:
    """Raise ``InvalidInput`` naming the first of the three values that is malformed.

    The values may come from a player typing them into a verify command, so each error
    says what a good value looks like.
    """
    if (
        not isinstance(server_seed, str)
        or len(server_seed) != server_seed_chars
        or not set(server_seed) <= set(string.hexdigits.lower())
    ):
        raise InvalidInput(
            "server_seed", f"use the {server_seed_chars} lowercase hex digits the game revealed"
        )
    if (
        not isinstance(client_seed, str)
        or not 0 < len(client_seed) <= client_seed_chars_max
        or not client_seed.isprintable()
    ):
        raise InvalidInput("client_seed", f"use 1 to {client_seed_chars_max} printable characters")
    if isinstance(nonce, bool) or not isinstance(nonce, int) or not 0 <= nonce <= nonce_max:
        raise InvalidInput("nonce", f"use a whole number from 0 to {nonce_max}")


class FairStream:
    """The deterministic random stream of one game: equal inputs give equal draws."""

    def __init__(self, server_seed: str, client_seed: str, nonce: int) -> None:
        check_seeds(server_seed, client_seed, nonce)
        self._key = server_seed.encode()
        self._prefix = f"{client_seed}:{nonce}:"
        self._counter = 0
        self._block = b""
        self._offset = 0

    def _next_chunk(self) -> int:
        if self._offset == len(self._block):
            message = f"{self._prefix}{self._counter}".encode()
            self._block = hmac.new(self._key, message, hashlib.sha256).digest()
            self._counter += 1
            self._offset = 0
        chunk = self._block[self._offset : self._offset + _chunk_bytes]
        self._offset += _chunk_bytes
        return int.from_bytes(chunk, "big")

    def randbelow(self, n: int) -> int:
        """A uniform int in ``[0, n)``, for ``1 <= n <= 2**32``.

        A chunk at or above the largest multiple of ``n`` below 2**32 is rejected and the
        next one drawn, so every result is exactly equally likely (a plain ``chunk % n``
        would favour small results).
        """
        if not 0 < n <= _chunk_range:
            raise ValueError(f"randbelow needs 1 <= n <= 2**32, got {n}")
        limit = _chunk_range - _chunk_range % n
        while True:
            chunk = self._next_chunk()
            if chunk < limit:
                return chunk % n

    def iter_shuffle(self, items: Sequence[T]) -> Iterator[T]:
        """Yield ``items`` in shuffled order, drawing randomness only as it is consumed.

        This is the forward Fisher–Yates shuffle: step ``i`` swaps position ``i`` with a
        uniform position in ``[i, len)``. Position ``i`` is final after step ``i``, so a
        blackjack shoe can be dealt card by card and its first cards recomputed cheaply.
        """
        order = list(items)
        for i in range(len(order) - 1):
            j = i + self.randbelow(len(order) - i)
            order[i], order[j] = order[j], order[i]
            yield order[i]
        # The last position has one candidate left, so it takes no draw.
        yield from order[-1:]

    def shuffle(self, items: Sequence[T]) -> list[T]:
        """A uniformly random permutation of ``items`` (the whole of ``iter_shuffle``)."""
        return list(self.iter_shuffle(items))
