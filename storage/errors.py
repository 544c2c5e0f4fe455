"""Errors raised by the storage layer. These are operator-facing, not user-facing."""

from __future__ import annotations


class StorageError(Exception):
    """A write or read against the store failed; the message says which and why."""


class RecordVersionError(StorageError):
    """A record was written by a newer version of Croupier than this one."""

    def __init__(self, kind: str, found: int, supported: int) -> None:
        super().__init__(
            f"{kind} record has version {found}, newer than the {supported} this "
            f"Croupier understands; upgrade Croupier before opening this store"
        )
        self.kind = kind
        self.found = found
        self.supported = supported


class RecordDecodeError(StorageError):
    """A stored value is not a valid record."""


class SchemaTooNewError(StorageError):
    """The store's schema version is newer than this code knows."""

    def __init__(self, found: int, supported: int) -> None:
        super().__init__(
            f"store schema version {found} is newer than {supported}, the newest this "
            f"Croupier knows; run a newer Croupier or restore an older backup"
        )
        self.found = found
        self.supported = supported


class InstanceLockedError(StorageError):
    """Another process holds the data directory's instance lock."""

    def __init__(self, path: str, holder_pid: int | None) -> None:
        holder = f"pid {holder_pid}" if holder_pid is not None else "another process"
        super().__init__(f"data directory {path} is in use by {holder}; stop it first")
        self.path = path
        self.holder_pid = holder_pid


class WriterClosedError(StorageError):
    """The writer has stopped and takes no more requests."""
