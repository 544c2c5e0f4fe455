"""Creating a backup: one consistent snapshot of the store, copied, renamed, then listed.

The copy is written under a temporary name and renamed into place, and only then listed
in the manifest, so a crash at any moment never leaves a half copy listed; whatever
stops a backup, no unlisted copy is left behind to fill the disk.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import lmdb
import trio

from metrics import log_event
from storage.backup.files import fsync_dir, stream_hashed
from storage.backup.manifest import entry_json, manifest_lock, read_manifest, write_manifest
from storage.backup.model import (
    DATA_FILE_NAME,
    PARTIAL_PREFIX,
    BackupEntry,
    BackupError,
    Progress,
    logger,
)
from storage.migrations import META_DB, read_schema_version
from storage.store import Store


@dataclass(frozen=True)
class _Copy:
    """What a finished copy of one snapshot holds, before it is named and listed."""

    schema_version: int
    records: Mapping[str, int]
    size_bytes: int
    sha256: str


def create_backup(
    store: Store,
    backup_dir: str | os.PathLike[str],
    *,
    now: float | None = None,
    progress: Progress | None = None,
) -> BackupEntry:
    """Copy one consistent snapshot of ``store`` into ``backup_dir`` and list it.

    Blocking: call it from a worker thread (``create_backup_async`` does). It holds
    ``store.map_gate`` for the whole copy, so the map cannot grow under its read
    transaction; writes carry on, and one that needs a bigger map waits for the copy.
    """
    directory = Path(backup_dir)
    created_at = time.time() if now is None else now
    started = time.perf_counter()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        made = Path(tempfile.mkdtemp(prefix=PARTIAL_PREFIX, dir=directory))
    except OSError as exc:
        raise BackupError(f"cannot create a backup in {directory}: {exc}") from exc
    try:
        copied = _copy_store(store, made / DATA_FILE_NAME, progress)
        fsync_dir(made)
        entry = _name_and_list(directory, made, created_at, copied)
    except BaseException as exc:
        # Whatever stopped the backup, no unlisted copy is left behind to fill the disk.
        shutil.rmtree(made, ignore_errors=True)
        if isinstance(exc, OSError | lmdb.Error):
            raise BackupError(
                f"backup into {directory} failed: {exc}; check that the backup directory "
                f"has free space and is writable, then run `croupier backup create`"
            ) from exc
        raise
    log_event(
        logger,
        "backup_created",
        name=entry.name,
        path=str(entry.directory),
        size_bytes=entry.size_bytes,
        schema_version=entry.schema_version,
        seconds=round(time.perf_counter() - started, 3),
    )
    return entry


def _copy_store(store: Store, dest: Path, progress: Progress | None) -> _Copy:
    """Copy one read snapshot of ``store`` into ``dest``, with its schema and counts."""
    with store.map_gate, store.env.begin(buffers=False) as txn:
        # The meta handle is opened in this transaction: a handle opened in a
        # read-only environment's earlier (ended) transaction is no longer valid.
        meta = store.env.open_db(META_DB, txn=txn, create=False)
        schema_version = read_schema_version(txn, meta)
        records = {
            name: int(txn.stat(db)["entries"])
            for name, db in sorted(store.dbs.items())
            if name != "meta"
        }
        estimate = store.map_usage()[0]
        size, digest = _copy_snapshot(store.env, txn, dest, estimate, progress)
    return _Copy(schema_version, records, size, digest)


def _name_and_list(directory: Path, made: Path, created_at: float, copied: _Copy) -> BackupEntry:
    """Rename the finished copy ``made`` to its time and add it to the manifest."""
    with manifest_lock(directory):
        raws = read_manifest(directory)
        name = _free_name(directory, raws, created_at)
        os.rename(made, directory / name)
        try:
            fsync_dir(directory)
            entry = BackupEntry(
                name=name,
                directory=directory / name,
                created_at=created_at,
                size_bytes=copied.size_bytes,
                sha256=copied.sha256,
                schema_version=copied.schema_version,
                records=copied.records,
            )
            write_manifest(directory, [*raws, entry_json(entry)])
        except BaseException:
            # The copy has its final name now, so the caller's clean-up would miss it.
            shutil.rmtree(directory / name, ignore_errors=True)
            raise
    return entry


async def create_backup_async(
    store: Store,
    backup_dir: str | os.PathLike[str],
    *,
    now: float | None = None,
    progress: Progress | None = None,
) -> BackupEntry:
    """``create_backup`` in a worker thread.

    The thread is not abandoned on cancellation: it holds a read transaction of the
    store, which must end before the store closes.
    """
    return await trio.to_thread.run_sync(
        partial(create_backup, store, backup_dir, now=now, progress=progress)
    )


def _copy_snapshot(
    env: lmdb.Environment, txn: Any, dest: Path, estimate: int, progress: Progress | None
) -> tuple[int, str]:
    """Stream a compacted copy of ``txn``'s snapshot into ``dest``; return size and SHA-256.

    LMDB writes the copy into a pipe from a helper thread while this thread writes it to
    disk, so the checksum and the progress come from the bytes as they are written, in
    one pass. Compaction makes the final size unknown in advance; ``estimate`` (the
    pages in use) bounds it from above.
    """
    read_fd, write_fd = os.pipe()
    failures: list[Exception] = []

    def produce() -> None:
        try:
            env.copyfd(write_fd, compact=True, txn=txn)
        except Exception as exc:
            failures.append(exc)
        finally:
            os.close(write_fd)

    producer = threading.Thread(target=produce, name="croupier-backup-copy", daemon=True)
    producer.start()
    try:
        size, digest = _drain(read_fd, dest, estimate, progress)
    finally:
        # Closing the read end first makes a producer blocked on a full pipe fail at
        # once (EPIPE) when draining stopped early, so the join cannot hang.
        os.close(read_fd)
        producer.join()
    if failures:
        raise failures[0]
    if progress is not None:
        progress(size, size)
    return size, digest


def _drain(read_fd: int, dest: Path, estimate: int, progress: Progress | None) -> tuple[int, str]:
    with open(dest, "xb") as out:
        return stream_hashed(partial(os.read, read_fd), out, estimate, progress)


def _free_name(directory: Path, raws: list[dict[str, Any]], created_at: float) -> str:
    """The UTC time as a name, with a ``-N`` suffix if that second is taken already."""
    base = datetime.fromtimestamp(created_at, UTC).strftime("%Y%m%dT%H%M%SZ")
    taken = {raw.get("name") for raw in raws}
    name, suffix = base, 1
    while name in taken or (directory / name).exists():
        suffix += 1
        name = f"{base}-{suffix}"
    return name
