"""The audit log: every admin action on a guild's economy, whoever made it and however.

Admin slash commands (``/money-add``, ``/shop-edit``, ``/economy-config`` ...), the HTTP
API and the web dashboard all record what they changed here, so one page can show a
guild's admin history whatever the door. An entry says who (``actor``), through what
(``via``), what (``action`` on ``target``), the state before and after, why
(``reason``) and when (``at``, wall-clock seconds).

Public surface (for the command layer, the API and the dashboard)::

    log = AuditLog(store, now)            # now: the wall clock, e.g. economy.context.now
    await log.append(
        guild,                            # Discord guild id (0: no guild, the console)
        request="api:123:key-1",          # the request's idempotency key, 1-128 bytes
        actor="user:42",                  # "user:<id>" or "token:<token id>"
        via="command",                    # one of VIAS: "command", "api", "dashboard"
        action="money.add",               # one of ACTIONS
        target="user:77",                 # "user:<id>", "item:<id>", "settings", "token:<id>"
        before={"balance": 10},           # plain values (msgpack-able), small
        after={"balance": 60},
        reason="event prize",
    )                                     # -> the AuditEntry that stays
    page = log.page(guild, limit=50)      # newest first -> AuditPage
    older = log.page(guild, before=page.next_before, limit=50)

``append`` is idempotent by ``(guild, request)``: a retried command or API request whose
change was already recorded returns the first entry and writes nothing, so one request
is one entry however often it is delivered. ``page`` reads a snapshot from the ordered
keyspace (by guild, then time); ``next_before`` is an opaque cursor (None on the last
page). Entries are kept for good: admin actions are rare, and the history of who moved
money is what an audit log is for.

The entries live in their own keyspace (``audit``, keyed by guild, time and a sequence
that keeps appends of one microsecond in order) beside an index of the requests already
recorded (``audit_by_request``), both written in one commit through the group-commit
writer.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from actors import keys
from actors.errors import InvalidInput
from limits import audit_page_entries_max, audit_request_bytes_max
from storage import RecordCodec, Store

# A key is (guild, microseconds, sequence): entries of one microsecond are told apart, and
# kept in the order they were appended, by the sequence.
_TIME_SEQUENCE = struct.Struct(">QQ")
_cursor_bytes = _TIME_SEQUENCE.size

VIAS = ("command", "api", "dashboard")
ACTIONS = (
    "money.add",
    "money.remove",
    "money.set",
    "member.reset",
    "item.create",
    "item.edit",
    "item.retire",
    "settings.update",
    "token.create",
    "token.revoke",
    "modlog.set",
    "birthdays.configure",
)


@dataclass(frozen=True)
class AuditEntry:
    """One admin action: who, through what, what on which target, before and after."""

    guild: int
    at: float
    actor: str
    via: str
    action: str
    target: str
    before: dict[str, Any]
    after: dict[str, Any]
    reason: str = ""
    request: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditPage:
    """Entries newest first; ``next_before`` pages on to older ones (None at the end)."""

    entries: tuple[AuditEntry, ...]
    next_before: str | None


_ENTRY = RecordCodec(AuditEntry, kind="audit", version=1)


def _next_key(txn: Any, db: Any, guild: int, at: float) -> bytes:
    """The key after the guild's newest one: at ``at``, or at the newest entry's time if
    the clock went back, so that the guild's keys stay in the order of appending."""
    assert at >= 0, at
    prefix = keys.u64(guild)
    micros, sequence = int(at * 1_000_000), 0
    cursor = txn.cursor(db=db)
    found = cursor.set_range(prefix + b"\xff" * (_cursor_bytes + 1))
    found = cursor.prev() if found else cursor.last()
    if found and bytes(cursor.key()).startswith(prefix):
        last_micros, last_sequence = _TIME_SEQUENCE.unpack(bytes(cursor.key())[8:])
        if last_micros >= micros:
            micros, sequence = last_micros, last_sequence + 1
    return prefix + _TIME_SEQUENCE.pack(micros, sequence)


class AuditLog:
    """Append and page the audit entries of every guild, over one store."""

    def __init__(self, store: Store, now: Callable[[], float]) -> None:
        self._store = store
        self._now = now

    async def append(
        self,
        guild: int,
        *,
        request: str,
        actor: str,
        via: str,
        action: str,
        target: str,
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        reason: str = "",
    ) -> AuditEntry:
        """Record one admin action unless ``request`` already has one; return the one
        that stays."""
        assert 0 <= guild <= keys.u64_max, guild
        assert via in VIAS, via
        assert action in ACTIONS, action
        assert actor and target, (actor, target)
        assert 0 < len(request.encode()) <= audit_request_bytes_max, request
        entry = AuditEntry(
            guild,
            self._now(),
            actor,
            via,
            action,
            target,
            dict(before),
            dict(after),
            reason,
            request,
        )
        value = _ENTRY.encode(entry)
        request_key = keys.u64(guild) + request.encode()
        db, by_request = self._store.db("audit"), self._store.db("audit_by_request")

        def write(txn: Any) -> AuditEntry:
            earlier = txn.get(request_key, db=by_request)
            if earlier is not None:
                raw = txn.get(bytes(earlier), db=db)
                assert raw is not None, ("audit index without its entry", request)
                return _ENTRY.decode(raw)
            entry_key = _next_key(txn, db, guild, entry.at)
            txn.put(entry_key, value, db=db)
            txn.put(request_key, entry_key, db=by_request)
            return entry

        return await self._store.write(write)

    def page(
        self, guild: int, *, before: str | None = None, limit: int = audit_page_entries_max
    ) -> AuditPage:
        """Up to ``limit`` entries of ``guild`` older than the cursor ``before``, newest
        first. A cursor that is not one ``page`` gave is refused with ``InvalidInput``."""
        assert 0 <= guild <= keys.u64_max, guild
        if not 1 <= limit <= audit_page_entries_max:
            raise InvalidInput("limit", f"must be from 1 to {audit_page_entries_max}")
        prefix = keys.u64(guild)
        # Every key of the guild sorts below the prefix followed by 0xff bytes.
        end = prefix + (b"\xff" * (_cursor_bytes + 1) if before is None else _parse_cursor(before))
        entries: list[AuditEntry] = []
        last_key = b""
        more = False
        with self._store.read() as txn:
            cursor = txn.cursor(db=self._store.db("audit"))
            # Walk backwards from just before ``end``: newest first.
            found = cursor.set_range(end)
            found = cursor.prev() if found else cursor.last()
            while found:
                key = bytes(cursor.key())
                if not key.startswith(prefix):
                    break
                if len(entries) == limit:
                    more = True
                    break
                entries.append(_ENTRY.decode(cursor.value()))
                last_key = key
                found = cursor.prev()
        return AuditPage(tuple(entries), last_key[8:].hex() if more else None)


def _parse_cursor(text: str) -> bytes:
    if len(text) != 2 * _cursor_bytes:
        raise InvalidInput("before", "is not a cursor from an earlier page")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise InvalidInput("before", "is not a cursor from an earlier page") from None
