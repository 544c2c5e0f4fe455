"""The manifest: ``backup_dir/manifest.json``, the list of backups and what is known of each.

It is read and written whole, replaced atomically, and updated under a file lock so the
server's schedule and the CLI never lose each other's changes. Entries are kept as
stored, so fields a newer version added survive an older version's update.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from storage.backup.files import fsync_dir
from storage.backup.model import (
    LATEST,
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    NAME_PATTERN,
    BackupEntry,
    BackupNotFoundError,
    ManifestError,
    VerifyResult,
)

_MANIFEST_LOCK_NAME = "manifest.lock"


def list_backups(backup_dir: str | os.PathLike[str]) -> list[BackupEntry]:
    """Every backup the manifest lists, newest first."""
    directory = Path(backup_dir)
    entries = [parse_entry(raw, directory) for raw in read_manifest(directory)]
    return sorted(entries, key=newness, reverse=True)


def find_backup(backup_dir: str | os.PathLike[str], name: str) -> BackupEntry:
    """The backup called ``name``; ``"latest"`` is the newest not known to be bad."""
    directory = Path(backup_dir)
    entries = list_backups(directory)
    for entry in entries:
        if entry.name == name or (name == LATEST and entry.verified_ok is not False):
            return entry
    raise BackupNotFoundError(directory, name)


def newest_verified(backup_dir: str | os.PathLike[str]) -> BackupEntry | None:
    """The newest backup whose last verification passed, if any."""
    return next((entry for entry in list_backups(backup_dir) if entry.verified_ok), None)


def record_verification(
    backup_dir: str | os.PathLike[str], result: VerifyResult, *, now: float
) -> None:
    """Note ``result`` in the manifest entry it is about (a no-op if it was pruned)."""
    directory = Path(backup_dir)
    with manifest_lock(directory):
        raws = read_manifest(directory)
        for raw in raws:
            if raw.get("name") == result.name:
                raw["verified_at"] = now
                raw["verified_ok"] = result.ok
                write_manifest(directory, raws)
                return


def newness(entry: BackupEntry) -> tuple[float, str]:
    return entry.created_at, entry.name


def entry_json(entry: BackupEntry) -> dict[str, Any]:
    created_utc = datetime.fromtimestamp(entry.created_at, UTC).isoformat(timespec="seconds")
    return {
        "name": entry.name,
        "created_at": entry.created_at,
        "created_utc": created_utc.replace("+00:00", "Z"),
        "size_bytes": entry.size_bytes,
        "sha256": entry.sha256,
        "schema_version": entry.schema_version,
        "records": dict(entry.records),
        "verified_at": entry.verified_at,
        "verified_ok": entry.verified_ok,
    }


def parse_entry(raw: Mapping[str, Any], directory: Path) -> BackupEntry:
    manifest = directory / MANIFEST_NAME
    try:
        name = raw["name"]
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise ValueError(f"bad backup name {name!r}")
        verified_at = raw.get("verified_at")
        verified_ok = raw.get("verified_ok")
        return BackupEntry(
            name=name,
            directory=directory / name,
            created_at=float(raw["created_at"]),
            size_bytes=int(raw["size_bytes"]),
            sha256=str(raw["sha256"]),
            schema_version=int(raw["schema_version"]),
            records={str(k): int(v) for k, v in dict(raw["records"]).items()},
            verified_at=None if verified_at is None else float(verified_at),
            verified_ok=None if verified_ok is None else bool(verified_ok),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(manifest, f"has a malformed entry ({exc})") from exc


def read_manifest(directory: Path) -> list[dict[str, Any]]:
    """The manifest's entries as stored, so fields a newer version added are kept."""
    path = directory / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ManifestError(path, f"cannot be read ({exc.strerror})") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(path, f"is not valid JSON ({exc})") from exc
    if not isinstance(document, dict) or not isinstance(document.get("backups"), list):
        raise ManifestError(path, "is not a backup manifest")
    if document.get("format") != MANIFEST_FORMAT:
        raise ManifestError(path, f"has format {document.get('format')!r}, not {MANIFEST_FORMAT}")
    backups: list[dict[str, Any]] = document["backups"]
    if not all(isinstance(raw, dict) for raw in backups):
        raise ManifestError(path, "has an entry that is not an object")
    return backups


def write_manifest(directory: Path, raws: list[dict[str, Any]]) -> None:
    """Replace the manifest atomically: a crash leaves the old one or the new one."""
    path = directory / MANIFEST_NAME
    temporary = directory / f"{MANIFEST_NAME}.tmp"
    document = {"format": MANIFEST_FORMAT, "backups": raws}
    with open(temporary, "w", encoding="utf-8") as out:
        json.dump(document, out, indent=2, sort_keys=True)
        out.write("\n")
        out.flush()
        os.fsync(out.fileno())
    os.rename(temporary, path)
    fsync_dir(directory)


@contextmanager
def manifest_lock(directory: Path) -> Iterator[None]:
    """Serialize manifest updates between the server's schedule and the CLI."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / _MANIFEST_LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
