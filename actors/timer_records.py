"""What a timer is on disk, and how a timer's handler answers the timer service.

A timer is a ``TimerRecord`` in the ``timers`` sub-database under a key ordered by its due
time (``keys.timer_key``); its owner writes it with ``put_timer`` and removes it with
``delete_timer`` in the same transaction as the state it serves. A handler answers by
returning or by raising ``TimerRetry`` or ``GuildForbidden``; ``settled`` turns a Discord
port's answer into one of those. The service that fires timers is ``actors.timers``.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from actors import keys
from actors.discord_port import DiscordResult, Done, Forbidden, Gone, Retry
from storage import RecordDecodeError, Store
from storage.codec import RecordCodec, unpackb


@dataclass
class TimerRecord:
    """One pending timer: its ``kind`` names the handler, ``target`` what it acts on (a
    game id, for a game's deadline), ``due`` the wall-clock second it falls due, and
    ``guild_id`` the guild whose permissions it needs (0 for timers that call no
    Discord guild action)."""

    kind: str
    target: str
    due: float
    extra: dict[str, Any] = field(default_factory=dict)
    guild_id: int = 0


# Adding ``guild_id`` with a default kept version 1: older records read as guild 0, and an
# older Croupier keeps the field in ``extra``.
TIMER = RecordCodec(TimerRecord, kind="timer", version=1)

TimerHandler = Callable[[TimerRecord], Awaitable[None]]


class TimerRetry(Exception):
    """A handler's answer: fire this timer again later (see the module's docstring)."""

    def __init__(self, reason: str, *, after_seconds: float | None = None) -> None:
        super().__init__(reason)
        assert after_seconds is None or after_seconds >= 0, after_seconds
        self.reason = reason
        self.after_seconds = after_seconds


class GuildForbidden(Exception):
    """A handler's answer: the bot lacks a permission in the timer's guild."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def settled(result: DiscordResult) -> Done | Gone:
    """The Discord answers a handler settles itself (done, or gone for good); a retry or
    a missing permission is raised for the timer service to handle."""
    if isinstance(result, Retry):
        raise TimerRetry(result.reason, after_seconds=result.retry_after_seconds)
    if isinstance(result, Forbidden):
        raise GuildForbidden(f"Discord code {result.code}: {result.message}")
    return result


def backoff_seconds(
    failures: int, low: float, high: float, rng: random.Random | None = None
) -> float:
    """The wait before attempt ``failures + 1``: doubling from ``low`` to ``high``, with
    "equal jitter" (between half and all of it) so that failures do not retry in step."""
    assert failures >= 1 and 0 < low <= high, (failures, low, high)
    base = min(high, low * 2.0 ** min(failures - 1, 62))
    jitter: float = (rng or random).uniform(0, base / 2)
    return base / 2 + jitter


# A timer record without unknown fields is a msgpack map whose first key is "kind" and its
# value a short string: reading those bytes alone is a third of the cost of decoding the
# record, which matters to a gauge that reads a million of them.
_KIND_KEY = b"\xa4kind"
_FIXSTR, _FIXSTR_LENGTH = 0xA0, 0x1F


def kind_of(value: bytes) -> str | None:
    """The ``kind`` of an encoded timer record (None if it cannot be read)."""
    if value[1:6] == _KIND_KEY and len(value) > 6 and value[6] & 0xE0 == _FIXSTR:
        length = value[6] & _FIXSTR_LENGTH
        return bytes(value[7 : 7 + length]).decode("utf-8", "replace")
    try:
        fields = unpackb(value)
    except RecordDecodeError:
        return None
    kind = fields.get("kind") if isinstance(fields, dict) else None
    return kind if isinstance(kind, str) else None


def put_timer(txn: Any, store: Store, timer_id: str, record: TimerRecord) -> bytes:
    key = keys.timer_key(record.due, timer_id)
    txn.put(key, TIMER.encode(record), db=store.db("timers"))
    return key


def delete_timer(txn: Any, store: Store, timer_id: str, due: float) -> None:
    txn.delete(keys.timer_key(due, timer_id), db=store.db("timers"))
