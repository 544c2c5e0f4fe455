"""Retention: backups older than the configured days are removed, never the newest good one.

Copies that a crash left unlisted, and abandoned partial copies, go the same way once
they are as old as a listed backup would be.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from metrics import log_event
from storage.backup.manifest import (
    manifest_lock,
    newness,
    parse_entry,
    read_manifest,
    write_manifest,
)
from storage.backup.model import DAY_SECONDS, NAME_PATTERN, PARTIAL_PREFIX, BackupEntry, logger


def prune_backups(
    backup_dir: str | os.PathLike[str], keep_days: int, now: float
) -> list[BackupEntry]:
    """Remove backups older than ``keep_days``, never the newest good one; return them.

    "Good" is the newest backup whose verification passed or, when none has been
    verified yet, the newest not known to be bad: a retention rule must never leave an
    operator with nothing to restore. Copies left unlisted by a crash, and abandoned
    partial copies, are removed once they are as old as a backup would be.
    """
    assert keep_days >= 1, keep_days
    directory = Path(backup_dir)
    if not directory.is_dir():
        return []
    cutoff = now - keep_days * DAY_SECONDS
    with manifest_lock(directory):
        raws = read_manifest(directory)
        entries = [parse_entry(raw, directory) for raw in raws]
        keep = _newest_good(entries)
        doomed = [e for e in entries if e.created_at < cutoff and e is not keep]
        doomed_names = {e.name for e in doomed}
        if doomed:
            write_manifest(directory, [raw for raw in raws if raw["name"] not in doomed_names])
        for entry in doomed:
            shutil.rmtree(entry.directory, ignore_errors=True)
            log_event(logger, "backup_pruned", name=entry.name, created_at=entry.created_at)
        listed = {e.name for e in entries} - doomed_names
        _remove_strays(directory, listed, cutoff)
    return doomed


def _newest_good(entries: list[BackupEntry]) -> BackupEntry | None:
    verified = [e for e in entries if e.verified_ok]
    candidates = verified or [e for e in entries if e.verified_ok is not False]
    return max(candidates, key=newness, default=None)


def _remove_strays(directory: Path, listed: set[str], cutoff: float) -> None:
    for child in directory.iterdir():
        ours = NAME_PATTERN.fullmatch(child.name) or child.name.startswith(PARTIAL_PREFIX)
        if not ours or child.name in listed or not child.is_dir():
            continue
        if child.stat().st_mtime < cutoff:
            shutil.rmtree(child, ignore_errors=True)
            log_event(logger, "backup_stray_removed", path=str(child))
