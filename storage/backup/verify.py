"""Verifying a backup: its checksum matches the manifest, it opens, its schema reads back,
and the integrity check passed in finds nothing wrong.

The integrity check is a parameter because ``storage`` may not import the layers above
it; ``actors.integrity.check_store`` is the one the server and the CLI pass.
"""

from __future__ import annotations

import logging
import os
from contextlib import ExitStack
from pathlib import Path

import lmdb

from metrics import log_event
from storage.backup.files import stream_hashed
from storage.backup.manifest import find_backup
from storage.backup.model import BackupEntry, IntegrityCheck, Progress, VerifyResult, logger
from storage.errors import StorageError
from storage.migrations import SCHEMA_VERSION
from storage.store import Store, open_store_readonly


def verify_backup(
    entry_or_path: BackupEntry | str | os.PathLike[str],
    *,
    integrity: IntegrityCheck,
    progress: Progress | None = None,
) -> VerifyResult:
    """Check a backup: checksum, opens read-only, schema version, integrity.

    A path names a backup directory; its manifest entry is looked up beside it. A copy
    whose checksum is wrong is never opened, because LMDB trusts the file it maps.
    """
    if isinstance(entry_or_path, BackupEntry):
        entry = entry_or_path
    else:
        path = Path(entry_or_path)
        entry = find_backup(path.parent, path.name)
    result = _verify(entry, integrity, progress)
    log_event(
        logger,
        "backup_verified",
        level=logging.INFO if result.ok else logging.ERROR,
        name=entry.name,
        ok=result.ok,
        problems=result.summary(),
    )
    return result


def _verify(
    entry: BackupEntry, integrity: IntegrityCheck, progress: Progress | None
) -> VerifyResult:
    damage = _damage(entry, progress)
    if damage is not None:
        return VerifyResult(entry.name, (damage,))
    with ExitStack() as stack:
        try:
            copy = stack.enter_context(open_store_readonly(entry.directory))
        except (StorageError, lmdb.Error) as exc:
            return VerifyResult(entry.name, (f"the copy does not open: {exc}",))
        problems = _schema_problems(copy, entry)
        try:
            report = integrity(copy)
        except (StorageError, lmdb.Error) as exc:
            problems.append(f"the integrity check cannot read the copy: {exc}")
            return VerifyResult(entry.name, tuple(problems))
    if not report.ok:
        problems.append("the integrity check found violations")
    return VerifyResult(entry.name, tuple(problems), report.text())


def _schema_problems(copy: Store, entry: BackupEntry) -> list[str]:
    problems = []
    if copy.schema_version != entry.schema_version:
        problems.append(
            f"schema version reads {copy.schema_version}, the manifest says {entry.schema_version}"
        )
    if copy.schema_version > SCHEMA_VERSION:
        problems.append(
            f"schema version {copy.schema_version} is newer than {SCHEMA_VERSION}; "
            f"verify it with the Croupier that wrote it"
        )
    return problems


def _damage(entry: BackupEntry, progress: Progress | None) -> str | None:
    """Why ``entry``'s data file is not the one the manifest describes, or None."""
    try:
        size, digest = _sha256_file(entry.data_file, progress)
    except FileNotFoundError:
        return f"{entry.data_file} is missing"
    if size != entry.size_bytes or digest != entry.sha256:
        return (
            f"checksum mismatch: {entry.data_file} has {size} bytes with sha256 "
            f"{digest[:16]}…, the manifest says {entry.size_bytes} bytes with "
            f"sha256 {entry.sha256[:16]}…"
        )
    return None


def _sha256_file(path: Path, progress: Progress | None) -> tuple[int, str]:
    with open(path, "rb") as source:
        return stream_hashed(source.read, None, os.fstat(source.fileno()).st_size, progress)
