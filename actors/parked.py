"""Records set aside because they could not be handled: parked transfers, games, timers.

A transfer in flight, a live game or a timer whose handling keeps raising would otherwise
stop boot, the outbox sweep or the timer loop on every start. After a bounded number of
attempts its record is moved, in one commit, out of its sub-database into ``parked``,
exactly as it was (its key and bytes are kept, so nothing is lost and an operator can
see what it held). A parked transfer still holds its coins: the integrity check counts it
like a transfer in flight until ``croupier transfers refund`` returns the money to its
sender, once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from actors import keys
from limits import parked_error_chars_max
from storage import RecordDecodeError, Store
from storage.codec import RecordCodec, unpackb

if TYPE_CHECKING:
    # Only a type here: the integrity check calls ``check_parked``, not the other way.
    from actors.integrity import IntegrityReport

ParkedKind = Literal["transfer", "game", "timer"]
PARKED_KINDS: tuple[ParkedKind, ...] = ("transfer", "game", "timer")


@dataclass
class ParkedRecord:
    """One record set aside. ``source_db``/``source_key``/``value`` are where it was and
    its bytes there. For a transfer, ``scope``, ``amount``, ``source`` and ``target`` are
    read from it when it could be decoded (``amount`` stays 0 when it could not)."""

    kind: str
    ident: str
    source_db: str
    source_key: bytes
    value: bytes
    error: str
    attempts: int
    parked_at: float
    scope: int = 0
    amount: int = 0
    source: str = ""
    target: str = ""
    refunded_at: float = 0.0
    refunded_by: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def refunded(self) -> bool:
        return self.refunded_at > 0

    @property
    def owner(self) -> str:
        """The account the coins go back to: a transfer's sender, a game's player."""
        return self.source if self.kind == "transfer" else self.target

    @property
    def coins_held(self) -> int:
        """Coins this record still accounts for in its scope."""
        return 0 if self.refunded else self.amount


PARKED = RecordCodec(ParkedRecord, kind="parked", version=1)


def parked_key(kind: ParkedKind, ident: str) -> bytes:
    assert kind in PARKED_KINDS, kind
    return kind.encode() + b":" + ident.encode()


def park_record(
    txn: Any,
    store: Store,
    *,
    kind: ParkedKind,
    ident: str,
    source_db: str,
    source_key: bytes,
    error: str,
    attempts: int,
    parked_at: float,
    target: str = "",
    describe: Callable[[ParkedRecord, bytes], None] | None = None,
) -> ParkedRecord | None:
    """Inside the caller's commit: move the one record at ``source_key`` of ``source_db``
    into ``parked``, its bytes kept. ``describe`` copies what the record holds (coins,
    accounts) into the parked record. None if the record is gone (handled meanwhile)."""
    db_source = store.db(source_db)
    raw = txn.get(source_key, db=db_source)
    if raw is None:
        return None
    parked = ParkedRecord(
        kind=kind,
        ident=ident,
        source_db=source_db,
        source_key=source_key,
        value=bytes(raw),
        error=error,
        attempts=attempts,
        parked_at=parked_at,
        target=target,
    )
    if describe is not None:
        describe(parked, parked.value)
    txn.delete(source_key, db=db_source)
    txn.put(parked_key(kind, ident), PARKED.encode(parked), db=store.db("parked"))
    return parked


def error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text[:parked_error_chars_max]


def parked_db(store: Store) -> Any | None:
    """The ``parked`` sub-database, or None in a read-only copy made before it existed."""
    return store.dbs.get("parked")


def _parked_values(txn: Any, store: Store, kind: ParkedKind) -> list[tuple[bytes, bytes]]:
    db = parked_db(store)
    if db is None:
        return []
    prefix = kind.encode() + b":"
    return [(bytes(key), bytes(value)) for key, value in keys.prefixed(txn, db, prefix)]


def read_parked(txn: Any, store: Store, kind: ParkedKind) -> list[ParkedRecord]:
    """The parked records of ``kind`` that can be read (the integrity check reports any
    that cannot)."""
    found = []
    for _, value in _parked_values(txn, store, kind):
        with contextlib.suppress(RecordDecodeError):
            found.append(PARKED.decode(value))
    return found


def list_parked(store: Store, kind: ParkedKind) -> list[ParkedRecord]:
    with store.read() as txn:
        return read_parked(txn, store, kind)


def check_parked(txn: Any, store: Store, report: IntegrityReport, sums: dict[int, int]) -> None:
    """Count the coins parked records still hold into their scope's sum, report how many
    of each kind are parked (figures: a parked record waits for an operator, it is not a
    fault), and check that each can be read and was moved, not copied: a record both
    parked and still where it came from would count its coins twice."""
    report.passed("parked_records_sound")
    for kind in PARKED_KINDS:
        waiting = refunded = coins = 0
        for key, value in _parked_values(txn, store, kind):
            try:
                record = PARKED.decode(value)
            except RecordDecodeError as exc:
                report.add("parked_records_sound", f"parked {key!r} cannot be read: {exc}")
                continue
            if record.refunded:
                refunded += 1
                continue
            waiting += 1
            if kind == "timer":
                report.list_parked(_timer_line(record))
            coins += record.coins_held
            sums[record.scope] += record.coins_held
            source = store.dbs.get(record.source_db)
            if source is not None and txn.get(record.source_key, db=source) is not None:
                report.add(
                    "parked_records_sound",
                    f"{kind} {record.ident} is parked and still in {record.source_db}",
                )
        report.figures[f"parked_{kind}s"] = waiting
        if kind == "transfer":
            report.figures["parked_transfers_refunded"] = refunded
            report.figures["parked_transfer_coins"] = coins


def _timer_line(record: ParkedRecord) -> str:
    """A parked timer for ``croupier check``: its kind, guild, target and last error."""
    try:
        fields = unpackb(record.value)
    except RecordDecodeError:
        fields = {}
    if not isinstance(fields, dict):
        fields = {}
    kind, guild = fields.get("kind", "unreadable"), fields.get("guild_id", 0)
    return (
        f"timer {record.ident} kind={kind} guild={guild} target={record.target} "
        f"attempts={record.attempts}: {record.error}"
    )
