"""What a backup is: its manifest entry, a verification's outcome, the errors, the names.

Every step of the backup package (creating, the manifest, verifying, retention,
restoring, the schedule) speaks in these types, so they live apart from all of them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from storage.errors import StorageError
from storage.store import Store

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
DATA_FILE_NAME = "data.mdb"
LATEST = "latest"

# A backup's directory is named by its UTC time; a copy under way has a temporary name.
NAME_PATTERN = re.compile(r"\d{8}T\d{6}Z(-\d+)?")
PARTIAL_PREFIX = ".partial-"
DAY_SECONDS = 86_400.0

logger = logging.getLogger("croupier.backup")

Progress = Callable[[int, int], None]
"""Called as ``progress(done_bytes, total_bytes)`` during a long step."""


class IntegrityResult(Protocol):
    """What an integrity check returns (``actors.integrity.IntegrityReport`` fits)."""

    @property
    def ok(self) -> bool: ...

    def text(self) -> str: ...


IntegrityCheck = Callable[[Store], IntegrityResult]


class BackupError(StorageError):
    """Taking, reading or restoring a backup failed; the message says what to do."""


class ManifestError(BackupError):
    """The manifest cannot be read."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(
            f"backup manifest {path} {why}; repair it or move it aside "
            f"(the copies beside it are left untouched)"
        )
        self.path = path


class BackupNotFoundError(BackupError):
    """No backup has the name asked for."""

    def __init__(self, backup_dir: Path, name: str) -> None:
        what = "no good backup" if name == LATEST else f"no backup named {name!r}"
        super().__init__(f"{what} in {backup_dir}; run `croupier backup list` to see the backups")
        self.backup_dir = backup_dir
        self.name = name


class BackupDamagedError(BackupError):
    """A backup's data file is missing or does not match its manifest checksum."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(
            f"backup {name} is damaged ({why}); nothing was changed, restore another "
            f"backup (see `croupier backup list`)"
        )
        self.name = name


class RestoreRefusedError(BackupError):
    """A server holds the data directory, so restoring into it would corrupt it."""

    def __init__(self, data_dir: Path, holder_pid: int | None) -> None:
        holder = f"pid {holder_pid}" if holder_pid is not None else "another process"
        super().__init__(
            f"cannot restore into {data_dir} while it is in use by {holder}; "
            f"stop the server and run the restore again"
        )
        self.data_dir = data_dir
        self.holder_pid = holder_pid


@dataclass(frozen=True)
class BackupEntry:
    """One backup as the manifest lists it; ``directory`` holds its ``data.mdb``."""

    name: str
    directory: Path
    created_at: float
    size_bytes: int
    sha256: str
    schema_version: int
    records: Mapping[str, int]
    verified_at: float | None = None
    verified_ok: bool | None = None

    @property
    def data_file(self) -> Path:
        return self.directory / DATA_FILE_NAME


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of ``verify_backup``; ``problems`` is empty when ``ok``."""

    name: str
    problems: tuple[str, ...]
    integrity_text: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        return "ok" if self.ok else "; ".join(self.problems)
