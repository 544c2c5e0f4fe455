"""Parking a game that cannot be handled: its records move into ``parked`` in one commit.

A game is parked when recovery cannot read its live-index entry or record, when its
refund raises, or when its actor keeps crashing and even the refund cannot be written.
The parked record holds the game's escrow (so the money sum still balances) and names
the game and user accounts an operator's release would move it between. ``park_game``
runs inside the caller's write transaction; the service is its only caller.
"""

from __future__ import annotations

from typing import Any

from actors import keys
from actors.accounts import game_account, user_account
from actors.games.records import GAME, GAME_TIMER_KIND, LIVE, GameRecord
from actors.parked import PARKED, ParkedRecord, parked_key
from actors.timer_records import TIMER, delete_timer
from storage import RecordDecodeError, Store, unpackb


def readable_game(raw: bytes | None) -> GameRecord | None:
    """The game record, if there is one that decodes with ids and escrow in range."""
    if raw is None:
        return None
    try:
        record = GAME.decode(raw)
    except RecordDecodeError:
        return None
    fields = (record.scope, record.user, record.escrow)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in fields):
        return None
    if not (0 <= record.scope < 2**64 and 0 < record.user < 2**64 and record.escrow >= 0):
        return None
    return record


def _timers_of(txn: Any, store: Store, game_id: str) -> list[bytes]:
    """Keys of the game timers aimed at ``game_id`` (a scan: only parking needs it)."""
    found = []
    for key, value in txn.cursor(db=store.db("timers")):
        try:
            timer = TIMER.decode(value)
        except RecordDecodeError:
            continue
        if timer.kind == GAME_TIMER_KIND and timer.target == game_id:
            found.append(bytes(key))
    return found


def _index_entries_of(txn: Any, store: Store, game_id: str) -> list[bytes]:
    """Keys of the live index entries naming ``game_id`` (a scan: only parking needs it)."""
    found = []
    for key, value in txn.cursor(db=store.db("live_games")):
        try:
            named = unpackb(value)[0]
        except (RecordDecodeError, TypeError, IndexError, KeyError):
            continue
        if named == game_id:
            found.append(bytes(key))
    return found


def _clear_references(
    txn: Any,
    store: Store,
    game_id: str,
    record: GameRecord | None,
    index: bytes | None,
    live_key: bytes | None,
) -> None:
    """Delete the game's index entries and deadline timers, known from its record when it
    can be read, else found by the game id they name."""
    db_live = store.db("live_games")
    if record is not None:
        own_index = keys.live_game_key(record.scope, record.user, record.kind)
        if txn.get(own_index, db=db_live) == index or live_key is None:
            txn.delete(own_index, db=db_live)
        delete_timer(txn, store, game_id, record.deadline)
    elif game_id:
        for timer_key in _timers_of(txn, store, game_id):
            txn.delete(timer_key, db=store.db("timers"))
        for index_key in _index_entries_of(txn, store, game_id):
            txn.delete(index_key, db=db_live)
    if live_key is not None:
        txn.delete(live_key, db=db_live)


def park_game(
    txn: Any, store: Store, game_id: str, live_key: bytes | None, error: str, now: float
) -> bool:
    """Move a live game's records (its record, index entry and deadline timer) into
    ``parked``; True if this call moved them, False if there was nothing left to move."""
    db_games, db_live = store.db("games"), store.db("live_games")
    game_key = keys.game_key(game_id) if 0 < len(game_id) <= 64 else None
    raw = txn.get(game_key, db=db_games) if game_key is not None else None
    record = readable_game(raw)
    if record is not None and record.phase != LIVE:
        # Settled or refunded meanwhile (an escalation refunds a crashing game).
        return False
    index = txn.get(live_key, db=db_live) if live_key is not None else None
    ident = game_id or (live_key or b"").hex()
    target = parked_key("game", ident)
    if txn.get(target, db=store.db("parked")) is not None:
        # Parked already by the other path (recovery or escalation): only a leftover
        # index entry may remain.
        if live_key is not None:
            txn.delete(live_key, db=db_live)
        return False
    if raw is None and index is None:
        return False
    parked = ParkedRecord(
        kind="game",
        ident=ident,
        source_db="games" if raw is not None else "live_games",
        source_key=(game_key if raw is not None else live_key) or b"",
        value=bytes(raw if raw is not None else index or b""),
        error=error,
        attempts=1,
        parked_at=now,
    )
    if record is not None:
        parked.scope, parked.amount = record.scope, record.escrow
        parked.source, parked.target = game_account(game_id), user_account(record.user)
    _clear_references(txn, store, game_id, record, index, live_key)
    if raw is not None:
        assert game_key is not None
        txn.delete(game_key, db=db_games)
    txn.put(target, PARKED.encode(parked), db=store.db("parked"))
    return True
