"""Restoring: a backup becomes the store of a data directory, the old store kept aside.

It takes the instance lock, so it refuses while a server runs; the backup is copied in
beside the store and checked against the manifest before anything is replaced, and the
current store is renamed, never deleted.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from metrics import log_event
from storage.backup.files import fsync_dir, stream_hashed
from storage.backup.model import (
    DATA_FILE_NAME,
    BackupDamagedError,
    BackupEntry,
    BackupError,
    Progress,
    RestoreRefusedError,
    logger,
)
from storage.errors import InstanceLockedError, SchemaTooNewError
from storage.lock import InstanceLock
from storage.migrations import SCHEMA_VERSION
from storage.store import env_path

_RESTORING_PREFIX = ".restoring-"


def restore_backup(
    data_dir: str | os.PathLike[str],
    entry: BackupEntry,
    *,
    progress: Progress | None = None,
    now: float | None = None,
) -> Path | None:
    """Make ``entry`` the store of ``data_dir``; return where the old store was moved.

    Holds the instance lock throughout, so it refuses (``RestoreRefusedError``, naming
    the pid) while a server runs. The backup is copied in beside the store and checked
    against its manifest checksum before anything is replaced; the current store is
    renamed to ``data_dir/replaced-<UTC time>/``, never deleted. Returns None when
    ``data_dir`` had no store.
    """
    directory = Path(data_dir)
    if entry.schema_version > SCHEMA_VERSION:
        raise SchemaTooNewError(entry.schema_version, SCHEMA_VERSION)
    lock = InstanceLock(directory)
    try:
        lock.acquire()
    except InstanceLockedError as exc:
        raise RestoreRefusedError(directory, exc.holder_pid) from None
    try:
        replaced = _swap_in(directory, entry, progress, time.time() if now is None else now)
    except OSError as exc:
        raise BackupError(
            f"restoring backup {entry.name} into {directory} failed: {exc}; "
            f"the current store was kept"
        ) from exc
    finally:
        lock.release()
    log_event(
        logger,
        "backup_restored",
        name=entry.name,
        data_dir=str(directory),
        replaced=str(replaced) if replaced else "",
    )
    return replaced


def _swap_in(
    directory: Path, entry: BackupEntry, progress: Progress | None, now: float
) -> Path | None:
    current = env_path(directory)
    staging = Path(tempfile.mkdtemp(prefix=_RESTORING_PREFIX, dir=directory))
    replaced: Path | None = None
    try:
        _copy_checked(entry, staging / DATA_FILE_NAME, progress)
        fsync_dir(staging)
        if current.exists():
            stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
            replaced = directory / f"replaced-{stamp}"
            suffix = 1
            while replaced.exists():
                suffix += 1
                replaced = directory / f"replaced-{stamp}-{suffix}"
            os.rename(current, replaced)
        os.rename(staging, current)
        fsync_dir(directory)
    except BaseException:
        # Put the old store back if it was moved aside but the new one is not in place.
        if replaced is not None and not current.exists():
            os.rename(replaced, current)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return replaced


def _copy_checked(entry: BackupEntry, dest: Path, progress: Progress | None) -> None:
    """Copy the backup's data file and check the copied bytes against the manifest.

    Hashing the bytes as they are copied checks exactly what is installed, in one read.
    """
    if not entry.data_file.is_file():
        raise BackupDamagedError(entry.name, f"{entry.data_file} is missing")
    with open(entry.data_file, "rb") as source, open(dest, "xb") as out:
        total = os.fstat(source.fileno()).st_size
        done, digest = stream_hashed(source.read, out, total, progress)
    if done != entry.size_bytes or digest != entry.sha256:
        raise BackupDamagedError(entry.name, "its checksum does not match the manifest")
