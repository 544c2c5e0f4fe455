"""The first answer of every interaction, kept so that a redelivery gets it again.

Like an idempotency key at a payment API, an interaction id names one request: the
command layer stores the answer it gave (a success or a refusal of the request itself)
together with a fingerprint of the request, and answers a repeat of the id from here. A
repeat with another fingerprint is a different request reusing the id, and is refused.
Transient refusals (busy, rate limited, internal) are not stored, so the retry they ask
for can go through.

The log is its own keyspace, written through the group-commit writer like everything
else; the first answer stored wins, so two deliveries racing each other still end with
one answer. Answers are forgotten after the idempotency retention, oldest first, through
an index ordered by the time they were given.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from actors import keys
from limits import answers_pruned_per_commit_max
from storage import RecordCodec, Store

fingerprint_bytes = 16

_TIME = struct.Struct(">d")


@dataclass(frozen=True)
class StoredAnswer:
    """An interaction's first answer: the request's fingerprint, the answer as plain
    values, and when it was given."""

    fingerprint: bytes
    answer: dict[str, Any]
    at: float
    extra: dict[str, Any] = field(default_factory=dict)


_ANSWER = RecordCodec(StoredAnswer, kind="answer", version=1)


def _time_key(at: float, key: bytes) -> bytes:
    # Times are never negative, so the big-endian bytes of the double sort like the time.
    assert at >= 0, at
    return _TIME.pack(at) + key


class KeyedAnswers:
    """Stored answers under byte keys, in a sub-database and its time index.

    The interactions' log (``AnswerLog``) and the HTTP API's idempotency keys (keyed by
    guild and the client's key) are two of these over their own keyspaces.
    """

    def __init__(self, store: Store, now: Callable[[], float], db: str, by_time_db: str) -> None:
        self._store = store
        self._now = now
        self._db = db
        self._by_time_db = by_time_db

    def get(self, key: bytes) -> StoredAnswer | None:
        with self._store.read() as txn:
            raw = txn.get(key, db=self._store.db(self._db))
        return None if raw is None else _ANSWER.decode(raw)

    async def put(self, key: bytes, fingerprint: bytes, answer: Mapping[str, Any]) -> StoredAnswer:
        """Store ``answer`` unless ``key`` already has one; return the one that stays."""
        assert len(fingerprint) == fingerprint_bytes, fingerprint
        assert key, key
        record = StoredAnswer(fingerprint, dict(answer), self._now())
        value = _ANSWER.encode(record)
        answers, by_time = self._store.db(self._db), self._store.db(self._by_time_db)

        def write(txn: Any) -> StoredAnswer:
            existing = txn.get(key, db=answers)
            if existing is not None:
                return _ANSWER.decode(existing)
            txn.put(key, value, db=answers)
            txn.put(_time_key(record.at, key), b"", db=by_time)
            return record

        return await self._store.write(write)

    async def prune(self, before: float) -> int:
        """Forget every answer given before ``before``; return how many."""
        answers, by_time = self._store.db(self._db), self._store.db(self._by_time_db)
        end = _TIME.pack(max(before, 0.0))
        pruned = 0
        while True:

            def write(txn: Any) -> int:
                cursor = txn.cursor(db=by_time)
                removed = 0
                if not cursor.first():
                    return 0
                while removed < answers_pruned_per_commit_max:
                    key = bytes(cursor.key())
                    if not key or key[: _TIME.size] >= end:
                        break
                    txn.delete(key[_TIME.size :], db=answers)
                    removed += 1
                    if not cursor.delete():
                        break
                return removed

            removed = await self._store.write(write)
            pruned += removed
            if removed < answers_pruned_per_commit_max:
                return pruned


class AnswerLog:
    """Stored answers keyed by interaction id, over one store."""

    def __init__(self, store: Store, now: Callable[[], float]) -> None:
        self._answers = KeyedAnswers(store, now, "answers", "answers_by_time")

    def get(self, interaction_id: int) -> StoredAnswer | None:
        return self._answers.get(keys.u64(interaction_id))

    async def put(
        self, interaction_id: int, fingerprint: bytes, answer: Mapping[str, Any]
    ) -> StoredAnswer:
        """Store ``answer`` unless the id already has one; return the one that stays."""
        return await self._answers.put(keys.u64(interaction_id), fingerprint, answer)

    async def prune(self, before: float) -> int:
        """Forget every answer given before ``before``; return how many."""
        return await self._answers.prune(before)
