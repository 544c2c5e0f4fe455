"""Ordered, named, idempotent schema migrations.

The schema version is the number of migrations applied. Each migration runs in its own
write transaction together with the record of its application, so a crash leaves it either
fully applied or not at all, and running migrations again is a no-op. A store whose version
is newer than this code's list refuses to open.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import lmdb

from storage.codec import decode_fields, packb
from storage.errors import SchemaTooNewError

META_DB = b"meta"
SCHEMA_VERSION_KEY = b"schema_version"
MIGRATION_KEY_PREFIX = b"migration:"

# Sub-databases of schema version 1. Keys and values are described where they are written
# (``actors/keys.py``); this list only makes them exist.
SUBDATABASES_V1 = (
    "wallets",  # (scope, user) -> wallet record
    "system",  # (scope, account name) -> system account balance
    "leaderboard",  # (scope, inverted balance, user) -> empty: ordered top balances
    "history",  # (scope, user, sequence) -> history entry
    "idempotency",  # (scope, user, key) -> stored result of a mutation
    "outbox",  # transfer id -> transfer in flight between wallets
    "applied",  # (scope, user, transfer id) -> credit applied marker
    "games",  # game id -> game record (holds the escrowed stake)
    "live_games",  # (scope, user, kind) -> game id
    "timers",  # (due time, timer id) -> timer record
    "shop",  # (scope, item id) -> shop item
    "inventory",  # (scope, user, item id) -> count
    "settings",  # scope -> per-scope settings
)
# Added by 0002: the first answer of every interaction (see actors/answers.py).
SUBDATABASES_V2 = (
    "answers",  # interaction id -> fingerprint of the request and its reply
    "answers_by_time",  # (answered at, interaction id) -> empty: the retention's order
)
# Added by 0003: records set aside because they could not be handled (see actors/parked.py).
SUBDATABASES_V3 = (
    "parked",  # (kind, id) -> a parked transfer, game or timer, with its original bytes
)
# Added by 0004: the audit log of admin actions (see actors/audit.py), the HTTP API's
# tokens (actors/api_tokens.py) and the first answer of every API request by its
# idempotency key (actors/answers.py).
SUBDATABASES_V4 = (
    "audit",  # (scope, at, request digest) -> audit entry: ordered by scope, then time
    "audit_by_request",  # (scope, request key) -> the audit key it wrote: once per request
    "api_tokens",  # SHA-256 of a token -> token record (guild, name, scope, revoked)
    "api_tokens_by_guild",  # (guild, token id) -> SHA-256 of the token: a guild's list
    "api_answers",  # (guild, idempotency key) -> fingerprint of the request and its answer
    "api_answers_by_time",  # (answered at, guild, idempotency key) -> empty: retention
)
# Added by 0005: the scheduler's records (see actors/scheduler/records.py); each one's
# timers sit in ``timers`` and are written in the same transaction as the record.
SUBDATABASES_V5 = (
    "tempbans",  # (guild, user) -> tempban record: the pending unban
    "birthdays",  # (guild, user) -> birthday record (month, day, zone, its timers' due times)
    "reminders",  # (guild, user, reminder number) -> reminder record
    "reminder_numbers",  # (guild, user) -> the member's last reminder number
    "scheduler_config",  # guild -> birthday role, channel, hour and zone; modlog channel
)
# Added by 0006: the provably fair seed pairs and the nonces their bets used (see
# actors/games/fairness.py).
SUBDATABASES_V6 = (
    "seed_pairs",  # (scope, user, seq) -> seed pair: write-once but for its nonce
    "seed_bets",  # (scope, user, seq, nonce) -> id of the game dealt with that nonce
)
# Every sub-database the current schema has, in the order migrations create them.
SUBDATABASES = (
    SUBDATABASES_V1
    + SUBDATABASES_V2
    + SUBDATABASES_V3
    + SUBDATABASES_V4
    + SUBDATABASES_V5
    + SUBDATABASES_V6
)


@dataclass(frozen=True)
class Migration:
    name: str
    apply: Callable[[lmdb.Environment, Any], None]


def _create_subdatabases(names: Sequence[str]) -> Callable[[lmdb.Environment, Any], None]:
    def apply(env: lmdb.Environment, txn: Any) -> None:
        for name in names:
            env.open_db(name.encode(), txn=txn, create=True)

    return apply


MIGRATIONS: tuple[Migration, ...] = (
    Migration("0001_initial_subdatabases", _create_subdatabases(SUBDATABASES_V1)),
    Migration("0002_interaction_answers", _create_subdatabases(SUBDATABASES_V2)),
    Migration("0003_parked_subdatabase", _create_subdatabases(SUBDATABASES_V3)),
    Migration("0004_audit_and_api", _create_subdatabases(SUBDATABASES_V4)),
    Migration("0005_scheduler", _create_subdatabases(SUBDATABASES_V5)),
    Migration("0006_seed_pairs", _create_subdatabases(SUBDATABASES_V6)),
)
SCHEMA_VERSION = len(MIGRATIONS)


def read_schema_version(txn: Any, meta: Any) -> int:
    raw = txn.get(SCHEMA_VERSION_KEY, db=meta)
    if raw is None:
        return 0
    _, fields = decode_fields("schema", raw, 1)
    version = fields["version"]
    assert isinstance(version, int) and version >= 0, version
    return version


def migrate(env: lmdb.Environment, migrations: Sequence[Migration] = MIGRATIONS) -> list[str]:
    """Apply the missing migrations in order; return the names applied now."""
    with env.begin(write=True) as txn:
        meta = env.open_db(META_DB, txn=txn, create=True)
    with env.begin() as txn:
        current = read_schema_version(txn, meta)
    if current > len(migrations):
        raise SchemaTooNewError(current, len(migrations))
    applied: list[str] = []
    for index in range(current, len(migrations)):
        migration = migrations[index]
        with env.begin(write=True) as txn:
            assert read_schema_version(txn, meta) == index
            migration.apply(env, txn)
            txn.put(
                MIGRATION_KEY_PREFIX + migration.name.encode(),
                packb({"v": 1, "applied_at": time.time(), "version": index + 1}),
                db=meta,
            )
            txn.put(SCHEMA_VERSION_KEY, packb({"v": 1, "version": index + 1}), db=meta)
        applied.append(migration.name)
    return applied
