"""Durable state: one LMDB environment, msgpack records, one group-commit writer."""

from storage.codec import RecordCodec, packb, unpackb
from storage.errors import (
    InstanceLockedError,
    RecordDecodeError,
    RecordVersionError,
    SchemaTooNewError,
    StorageError,
    WriterClosedError,
)
from storage.lock import InstanceLock
from storage.migrations import MIGRATIONS, SCHEMA_VERSION, Migration, migrate
from storage.store import Store, env_path, open_store, open_store_readonly

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "InstanceLock",
    "InstanceLockedError",
    "Migration",
    "RecordCodec",
    "RecordDecodeError",
    "RecordVersionError",
    "SchemaTooNewError",
    "StorageError",
    "Store",
    "WriterClosedError",
    "env_path",
    "migrate",
    "open_store",
    "open_store_readonly",
    "packb",
    "unpackb",
]
