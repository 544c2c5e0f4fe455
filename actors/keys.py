"""Key layout of every sub-database, in one place.

Keys are fixed-width big-endian integers so that LMDB's byte order is numeric order. A
scope is a guild id in the per-guild mode and 0 in the global mode (no guild has id 0), so
the two modes never share a key and switching between them loses nothing.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from limits import balance_coins_ceiling

_U64 = struct.Struct(">Q")
GLOBAL_SCOPE = 0
u64_max = 2**64 - 1


def u64(value: int) -> bytes:
    assert 0 <= value <= u64_max, value
    return _U64.pack(value)


def read_u64(data: bytes, offset: int = 0) -> int:
    value: int = _U64.unpack_from(data, offset)[0]
    return value


def wallet_key(scope: int, user: int) -> bytes:
    return _U64.pack(scope) + _U64.pack(user)


def split_wallet_key(key: bytes) -> tuple[int, int]:
    assert len(key) == 16, key
    return read_u64(key, 0), read_u64(key, 8)


def system_key(scope: int, account: str) -> bytes:
    return _U64.pack(scope) + account.encode()


def leaderboard_key(scope: int, balance: int, user: int) -> bytes:
    """Richest first: the balance is stored inverted so ascending order is descending."""
    assert 0 <= balance <= balance_coins_ceiling, balance
    return _U64.pack(scope) + _U64.pack(balance_coins_ceiling - balance) + _U64.pack(user)


def split_leaderboard_key(key: bytes) -> tuple[int, int, int]:
    """(scope, balance, user)."""
    assert len(key) == 24, key
    return read_u64(key, 0), balance_coins_ceiling - read_u64(key, 8), read_u64(key, 16)


def history_key(scope: int, user: int, sequence: int) -> bytes:
    return wallet_key(scope, user) + _U64.pack(sequence)


def idempotency_key(scope: int, user: int, key: str) -> bytes:
    return wallet_key(scope, user) + key.encode()


def applied_key(scope: int, user: int, transfer_id: bytes) -> bytes:
    return wallet_key(scope, user) + transfer_id


def item_key(scope: int, item_id: int) -> bytes:
    return _U64.pack(scope) + _U64.pack(item_id)


def inventory_key(scope: int, user: int, item_id: int) -> bytes:
    return wallet_key(scope, user) + _U64.pack(item_id)


def settings_key(scope: int) -> bytes:
    return _U64.pack(scope)


def game_key(game_id: str) -> bytes:
    return game_id.encode()


def live_game_key(scope: int, user: int, kind: str) -> bytes:
    return wallet_key(scope, user) + kind.encode()


def timer_key(due: float, timer_id: str) -> bytes:
    """Due time in milliseconds first, so a cursor walks timers in due order."""
    return _U64.pack(max(0, int(due * 1000))) + timer_id.encode()


def member_key(guild: int, user: int) -> bytes:
    """(guild, user): a tempban's, a birthday's and a member's reminder number's key."""
    return _U64.pack(guild) + _U64.pack(user)


def reminder_key(guild: int, user: int, number: int) -> bytes:
    return member_key(guild, user) + _U64.pack(number)


def guild_key(guild: int) -> bytes:
    return _U64.pack(guild)


def prefixed(txn: Any, db: Any, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Every (key, value) of ``db`` whose key starts with ``prefix``, in key order."""
    cursor = txn.cursor(db=db)
    if not cursor.set_range(prefix):
        return
    for key, value in cursor:
        if not key.startswith(prefix):
            return
        yield key, value


def prefixed_keys(txn: Any, db: Any, prefix: bytes) -> Iterator[bytes]:
    """Every key of ``db`` that starts with ``prefix``, in order (values not read)."""
    cursor = txn.cursor(db=db)
    if not cursor.set_range(prefix):
        return
    for key in cursor.iternext(values=False):
        if not key.startswith(prefix):
            return
        yield key
