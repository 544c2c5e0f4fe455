"""Backups: hot, consistent, compacted copies of the store, with a manifest.

A backup is one LMDB read snapshot copied (compacted) into ``backup_dir/<UTC time>/data.mdb``
while the server keeps writing. The copy is written under a temporary name and renamed
into place, and only then listed in ``backup_dir/manifest.json``, so a crash at any moment
never leaves a half copy listed. Each manifest entry records the time, the size and the
SHA-256 of ``data.mdb``, the schema version and the record count of every sub-database,
and the outcome of the last verification.

Verification proves a copy is usable: its checksum matches the manifest, it opens
read-only, its schema version reads back, and the integrity check (passed in, because
``storage`` may not import the layers above it) finds nothing wrong. Restoring takes the
instance lock, so it refuses while a server runs, and moves the current store aside
rather than deleting it.

``run_backup_schedule`` is the server's daily task: backup, verify, prune, and the
``croupier_backup_last_success_timestamp_seconds`` gauge.

The modules, one step each: ``model`` (entries, results, errors), ``files`` (the
hashed, durable byte stream every step uses), ``create``, ``manifest``, ``verify``,
``retention``, ``restore`` and ``schedule``. Callers import from this package.
"""

from storage.backup.create import create_backup, create_backup_async
from storage.backup.manifest import find_backup, list_backups, newest_verified, record_verification
from storage.backup.model import (
    DATA_FILE_NAME,
    LATEST,
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    BackupDamagedError,
    BackupEntry,
    BackupError,
    BackupNotFoundError,
    IntegrityCheck,
    IntegrityResult,
    ManifestError,
    Progress,
    RestoreRefusedError,
    VerifyResult,
    logger,
)
from storage.backup.restore import restore_backup
from storage.backup.retention import prune_backups
from storage.backup.schedule import local_utc_offset_seconds, next_backup_time, run_backup_schedule
from storage.backup.verify import verify_backup

__all__ = [
    "DATA_FILE_NAME",
    "LATEST",
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "BackupDamagedError",
    "BackupEntry",
    "BackupError",
    "BackupNotFoundError",
    "IntegrityCheck",
    "IntegrityResult",
    "ManifestError",
    "Progress",
    "RestoreRefusedError",
    "VerifyResult",
    "create_backup",
    "create_backup_async",
    "find_backup",
    "list_backups",
    "local_utc_offset_seconds",
    "logger",
    "newest_verified",
    "next_backup_time",
    "prune_backups",
    "record_verification",
    "restore_backup",
    "run_backup_schedule",
    "verify_backup",
]
