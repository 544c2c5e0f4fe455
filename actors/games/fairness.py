"""Seed pairs: the server seed is committed before the bets it deals, then revealed.

Each player has, per economy scope, a sequence of seed pairs 0, 1, 2, ... The last one is
the *active* pair: its server seed is secret and only its SHA-256 is shown; every earlier
pair is *revealed*, and its server seed is shown with every game it dealt. A pair counts
its bets in ``nonce``: bet ``n`` of a pair is dealt from (server seed, client seed, n)
(see FAIRNESS.md). Rotating (the player sets a client seed) opens pair ``seq + 1``,
which reveals pair ``seq``; no pair ever changes but for its nonce. Each pair also
commits the next pair's server seed, so the seed a new client seed is combined with was
fixed, and its hash shown, before the player chose that client seed.

Keys. ``seed_pairs``: (scope, user, seq) -> the pair. ``seed_bets``: (scope, user, seq,
nonce) -> the game id dealt with that nonce. A bet's stake commit advances the nonce and
writes its bet entry (``bet_write``), so a nonce is consumed exactly when a stake moves;
the integrity check proves the entries of each pair are exactly 0 to ``nonce - 1``.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from typing import Any

from actors import keys
from actors.errors import CroupierError, GameInProgress, InvalidInput
from actors.games import rules
from limits import client_seed_chars_max
from storage import RecordCodec, Store, unpackb

SCHEME = 1
PAIRS_DB = "seed_pairs"
BETS_DB = "seed_bets"
# A random default client seed: 16 hex digits the player sees and may replace.
default_client_seed_bytes = 8


@dataclass
class SeedPair:
    """One seed pair. ``nonce`` is the next bet's nonce (the bets made with it so far);
    ``opened_by`` is the key of the rotation request that opened it ("" for a first pair,
    opened by a look or a first bet). Only ``nonce`` ever changes once it is written."""

    scope: int
    user: int
    seq: int
    server_seed: str
    seed_hash: str
    client_seed: str
    created_at: float
    nonce: int = 0
    opened_by: str = ""
    scheme: int = SCHEME
    # The server seed of the pair that follows this one, drawn and committed (its hash
    # shown) with this pair, so that it is fixed before the player picks the client seed
    # that opens it. Secret until that next pair is revealed in turn.
    next_server_seed: str = ""
    next_seed_hash: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


PAIR = RecordCodec(SeedPair, kind="seed_pair", version=1)


class SeedPairChanged(CroupierError):
    """The player's seed pair moved on (another bet or a rotation) while a bet was being
    placed; the service places the bet again with the pair as it now is."""

    code = "seed_pair_changed"

    def __init__(self) -> None:
        super().__init__("your seed pair changed while the bet was placed; place it again")


class SeedNotRevealed(CroupierError):
    """A game whose server seed is still secret: its pair is the player's active one."""

    code = "seed_not_revealed"

    def __init__(self, game_id: str) -> None:
        super().__init__(
            f"game {game_id} was dealt with your active seed pair, whose server seed is "
            "still secret; set a new client seed with /fairness client_seed:... to reveal "
            "it, then verify the game"
        )
        self.game_id = game_id


def pair_key(scope: int, user: int, seq: int) -> bytes:
    return keys.u64(scope) + keys.u64(user) + keys.u64(seq)


def bet_key(scope: int, user: int, seq: int, nonce: int) -> bytes:
    return pair_key(scope, user, seq) + keys.u64(nonce)


def split_bet_key(key: bytes) -> tuple[int, int, int, int]:
    assert len(key) == 32, key
    return (
        keys.read_u64(key),
        keys.read_u64(key, 8),
        keys.read_u64(key, 16),
        keys.read_u64(key, 24),
    )


def check_client_seed(client_seed: object) -> str:
    """Return ``client_seed`` if it is one a player may set, else raise ``InvalidInput``."""
    if (
        not isinstance(client_seed, str)
        or not 0 < len(client_seed) <= client_seed_chars_max
        or not client_seed.isprintable()
    ):
        raise InvalidInput("client_seed", f"use 1 to {client_seed_chars_max} printable characters")
    return client_seed


def default_client_seed() -> str:
    """The client seed of a pair the player did not choose one for: random, and shown."""
    return secrets.token_hex(default_client_seed_bytes)


def new_pair(
    scope: int,
    user: int,
    seq: int,
    now: float,
    client_seed: str | None = None,
    opened_by: str = "",
    server_seed: str | None = None,
) -> SeedPair:
    """A fresh pair: ``server_seed`` (the one its previous pair committed as the next) or a
    new secret one, the given client seed or a random one, and the next pair's server seed
    drawn and committed now."""
    seed = server_seed if server_seed is not None else rules.new_server_seed()
    chosen = client_seed if client_seed is not None else default_client_seed()
    rules.check_seeds(seed, chosen, 0)
    following = rules.new_server_seed()
    return SeedPair(
        scope,
        user,
        seq,
        seed,
        rules.seed_hash(seed),
        chosen,
        now,
        0,
        opened_by,
        SCHEME,
        following,
        rules.seed_hash(following),
    )


def active_pair(txn: Any, store: Store, scope: int, user: int) -> SeedPair | None:
    """The player's last (active) pair, read in ``txn``; None before the first."""
    prefix = keys.u64(scope) + keys.u64(user)
    cursor = txn.cursor(db=store.db(PAIRS_DB))
    # No seq reaches 2**64 - 1, so the first key at or past prefix + ff..ff is a later
    # player's, and the key before it is this player's last pair, if they have one.
    found = cursor.prev() if cursor.set_range(prefix + b"\xff" * 8) else cursor.last()
    if not found or not bytes(cursor.key()).startswith(prefix):
        return None
    pair = PAIR.decode(cursor.value())
    assert (pair.scope, pair.user) == (scope, user), pair
    return pair


def pair_at(txn: Any, store: Store, scope: int, user: int, seq: int) -> SeedPair | None:
    raw = txn.get(pair_key(scope, user, seq), db=store.db(PAIRS_DB))
    return PAIR.decode(raw) if raw is not None else None


def is_revealed(txn: Any, store: Store, scope: int, user: int, seq: int) -> bool:
    """Whether pair ``seq`` is revealed: a later pair exists."""
    return txn.get(pair_key(scope, user, seq + 1), db=store.db(PAIRS_DB)) is not None


def bet_write(txn: Any, store: Store, pair: SeedPair, created: bool, game_id: str) -> None:
    """Inside a bet's stake commit: consume nonce ``pair.nonce`` of ``pair`` for
    ``game_id``. ``pair`` is the pair as it was read when the game was dealt (``created``
    if it did not exist yet and opens with this bet); if the active pair is no longer
    exactly that, raise ``SeedPairChanged`` so that nothing commits and the bet is dealt
    again."""
    current = active_pair(txn, store, pair.scope, pair.user)
    if created:
        if current is not None:
            raise SeedPairChanged()
        assert pair.seq == 0 and pair.nonce == 0, pair
    elif current is None or current != pair:
        raise SeedPairChanged()
    advanced = dataclasses.replace(pair, nonce=pair.nonce + 1)
    db_pairs, db_bets = store.db(PAIRS_DB), store.db(BETS_DB)
    txn.put(pair_key(pair.scope, pair.user, pair.seq), PAIR.encode(advanced), db=db_pairs)
    entry = bet_key(pair.scope, pair.user, pair.seq, pair.nonce)
    assert txn.get(entry, db=db_bets) is None, ("nonce used twice", pair)
    txn.put(entry, game_id.encode(), db=db_bets)


def look_write(store: Store, scope: int, user: int, now: float) -> Any:
    """A write that returns the active pair, opening pair 0 if the player has none."""
    candidate = new_pair(scope, user, 0, now)

    def write(txn: Any) -> SeedPair:
        current = active_pair(txn, store, scope, user)
        if current is not None:
            return current
        txn.put(pair_key(scope, user, 0), PAIR.encode(candidate), db=store.db(PAIRS_DB))
        return candidate

    return write


def rotate_write(
    store: Store, scope: int, user: int, client_seed: str, key: str, now: float
) -> Any:
    """A write that reveals the active pair and opens the next with ``client_seed``;
    returns (revealed pair, new pair). A redelivered request (same ``key``) returns what
    the first did. Refused while a blackjack round is live: its shoe comes from the
    active pair, which must stay secret until the round is over."""
    check_client_seed(client_seed)
    # The seeds are drawn here, before the write runs in the writer's thread.
    first = new_pair(scope, user, 0, now)
    fresh = new_pair(scope, user, 0, now, client_seed, key)
    after_first = new_pair(scope, user, 1, now, client_seed, key, first.next_server_seed)

    def write(txn: Any) -> tuple[SeedPair, SeedPair]:
        current = active_pair(txn, store, scope, user)
        if current is not None and current.opened_by == key:
            revealed = pair_at(txn, store, scope, user, current.seq - 1)
            assert revealed is not None, current
            return revealed, current
        live = txn.get(keys.live_game_key(scope, user, "blackjack"), db=store.db("live_games"))
        if live is not None:
            raise GameInProgress("blackjack", str(unpackb(live)[0]))
        db_pairs = store.db(PAIRS_DB)
        if current is None:
            # A first look and its rotation at once: pair 0 is opened and revealed unused.
            current, opened = first, after_first
            txn.put(pair_key(scope, user, 0), PAIR.encode(current), db=db_pairs)
        else:
            # The new pair's server seed is the one committed with the current pair,
            # before the player chose this client seed.
            opened = dataclasses.replace(
                fresh,
                seq=current.seq + 1,
                server_seed=current.next_server_seed,
                seed_hash=current.next_seed_hash,
            )
        txn.put(pair_key(scope, user, opened.seq), PAIR.encode(opened), db=db_pairs)
        return current, opened

    return write
