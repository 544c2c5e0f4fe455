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
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, NoReturn, Protocol, TypeVar

import lmdb
import trio

from metrics import Metrics, log_event
from storage.errors import InstanceLockedError, SchemaTooNewError, StorageError
from storage.lock import InstanceLock
from storage.migrations import META_DB, SCHEMA_VERSION, read_schema_version
from storage.store import Store, env_path, open_store_readonly

T = TypeVar("T")

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
DATA_FILE_NAME = "data.mdb"
LATEST = "latest"

_MANIFEST_LOCK_NAME = "manifest.lock"
_PARTIAL_PREFIX = ".partial-"
_RESTORING_PREFIX = ".restoring-"
_NAME_PATTERN = re.compile(r"\d{8}T\d{6}Z(-\d+)?")
_CHUNK_BYTES = 1 << 20
_DAY_SECONDS = 86_400.0
# The schedule sleeps in steps no longer than this and looks at the wall clock after
# each, because trio's clock is monotonic: it does not follow a wall clock that is set
# forward, nor (on Linux) the time a machine spends suspended.
_WALL_CLOCK_RECHECK_SECONDS = 300.0

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


# Creating.


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
        made = Path(tempfile.mkdtemp(prefix=_PARTIAL_PREFIX, dir=directory))
    except OSError as exc:
        raise BackupError(f"cannot create a backup in {directory}: {exc}") from exc
    try:
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
            size, digest = _copy_snapshot(store.env, txn, made / DATA_FILE_NAME, estimate, progress)
        _fsync_dir(made)
        with _manifest_lock(directory):
            raws = _read_manifest(directory)
            name = _free_name(directory, raws, created_at)
            os.rename(made, directory / name)
            made = directory / name
            _fsync_dir(directory)
            entry = BackupEntry(
                name=name,
                directory=made,
                created_at=created_at,
                size_bytes=size,
                sha256=digest,
                schema_version=schema_version,
                records=records,
            )
            _write_manifest(directory, [*raws, _entry_json(entry)])
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
        name=name,
        path=str(made),
        size_bytes=size,
        schema_version=schema_version,
        seconds=round(time.perf_counter() - started, 3),
    )
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
    digest = hashlib.sha256()
    done = 0
    with open(dest, "xb") as out:
        while chunk := os.read(read_fd, _CHUNK_BYTES):
            out.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, max(estimate, done))
        out.flush()
        os.fsync(out.fileno())
    return done, digest.hexdigest()


def _free_name(directory: Path, raws: list[dict[str, Any]], created_at: float) -> str:
    """The UTC time as a name, with a ``-N`` suffix if that second is taken already."""
    base = datetime.fromtimestamp(created_at, UTC).strftime("%Y%m%dT%H%M%SZ")
    taken = {raw.get("name") for raw in raws}
    name, suffix = base, 1
    while name in taken or (directory / name).exists():
        suffix += 1
        name = f"{base}-{suffix}"
    return name


# The manifest.


def list_backups(backup_dir: str | os.PathLike[str]) -> list[BackupEntry]:
    """Every backup the manifest lists, newest first."""
    directory = Path(backup_dir)
    entries = [_parse_entry(raw, directory) for raw in _read_manifest(directory)]
    return sorted(entries, key=_newness, reverse=True)


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
    with _manifest_lock(directory):
        raws = _read_manifest(directory)
        for raw in raws:
            if raw.get("name") == result.name:
                raw["verified_at"] = now
                raw["verified_ok"] = result.ok
                _write_manifest(directory, raws)
                return


def _newness(entry: BackupEntry) -> tuple[float, str]:
    return entry.created_at, entry.name


def _entry_json(entry: BackupEntry) -> dict[str, Any]:
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


def _parse_entry(raw: Mapping[str, Any], directory: Path) -> BackupEntry:
    manifest = directory / MANIFEST_NAME
    try:
        name = raw["name"]
        if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
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


def _read_manifest(directory: Path) -> list[dict[str, Any]]:
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


def _write_manifest(directory: Path, raws: list[dict[str, Any]]) -> None:
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
    _fsync_dir(directory)


@contextmanager
def _manifest_lock(directory: Path) -> Iterator[None]:
    """Serialize manifest updates between the server's schedule and the CLI."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / _MANIFEST_LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# Verifying.


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
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as source:
        total = os.fstat(source.fileno()).st_size
        while chunk := source.read(_CHUNK_BYTES):
            digest.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, max(total, done))
    return done, digest.hexdigest()


# Retention.


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
    cutoff = now - keep_days * _DAY_SECONDS
    with _manifest_lock(directory):
        raws = _read_manifest(directory)
        entries = [_parse_entry(raw, directory) for raw in raws]
        keep = _newest_good(entries)
        doomed = [e for e in entries if e.created_at < cutoff and e is not keep]
        doomed_names = {e.name for e in doomed}
        if doomed:
            _write_manifest(directory, [raw for raw in raws if raw["name"] not in doomed_names])
        for entry in doomed:
            shutil.rmtree(entry.directory, ignore_errors=True)
            log_event(logger, "backup_pruned", name=entry.name, created_at=entry.created_at)
        listed = {e.name for e in entries} - doomed_names
        _remove_strays(directory, listed, cutoff)
    return doomed


def _newest_good(entries: list[BackupEntry]) -> BackupEntry | None:
    verified = [e for e in entries if e.verified_ok]
    candidates = verified or [e for e in entries if e.verified_ok is not False]
    return max(candidates, key=_newness, default=None)


def _remove_strays(directory: Path, listed: set[str], cutoff: float) -> None:
    for child in directory.iterdir():
        ours = _NAME_PATTERN.fullmatch(child.name) or child.name.startswith(_PARTIAL_PREFIX)
        if not ours or child.name in listed or not child.is_dir():
            continue
        if child.stat().st_mtime < cutoff:
            shutil.rmtree(child, ignore_errors=True)
            log_event(logger, "backup_stray_removed", path=str(child))


# Restoring.


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
        _fsync_dir(staging)
        if current.exists():
            stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
            replaced = directory / f"replaced-{stamp}"
            suffix = 1
            while replaced.exists():
                suffix += 1
                replaced = directory / f"replaced-{stamp}-{suffix}"
            os.rename(current, replaced)
        os.rename(staging, current)
        _fsync_dir(directory)
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
    digest = hashlib.sha256()
    done = 0
    if not entry.data_file.is_file():
        raise BackupDamagedError(entry.name, f"{entry.data_file} is missing")
    with open(entry.data_file, "rb") as source, open(dest, "xb") as out:
        total = os.fstat(source.fileno()).st_size
        while chunk := source.read(_CHUNK_BYTES):
            out.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, max(total, done))
        out.flush()
        os.fsync(out.fileno())
    if done != entry.size_bytes or digest.hexdigest() != entry.sha256:
        raise BackupDamagedError(entry.name, "its checksum does not match the manifest")


def _fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# The daily schedule.


def local_utc_offset_seconds(when: float) -> float:
    """This machine's UTC offset at unix time ``when`` (it changes with DST)."""
    offset = datetime.fromtimestamp(when, UTC).astimezone().utcoffset()
    assert offset is not None
    return offset.total_seconds()


def next_backup_time(now: float, at: str, local_offset_seconds: Callable[[float], float]) -> float:
    """The first unix time after ``now`` whose local time of day is ``at`` ("HH:MM")."""
    hour, _, minute = at.partition(":")
    seconds_into_day = int(hour) * 3600 + int(minute) * 60
    assert 0 <= seconds_into_day < _DAY_SECONDS, at
    offset = local_offset_seconds(now)
    local_now = now + offset
    slot = math.floor(local_now / _DAY_SECONDS) * _DAY_SECONDS + seconds_into_day
    if slot <= local_now:
        slot += _DAY_SECONDS
    # A DST change before the slot shifts the offset, so the moment must be one whose
    # own offset makes its local time the slot.
    first_guess = slot - offset
    second_guess = slot - local_offset_seconds(first_guess)
    for moment in (first_guess, second_guess):
        if moment > now and moment + local_offset_seconds(moment) == slot:
            return moment
    # The clocks jumped over the slot that day; run when they would have shown it had
    # they not jumped, which is the first guess.
    return first_guess


async def run_backup_schedule(
    store: Store,
    backup_dir: str | os.PathLike[str],
    *,
    at: str,
    keep_days: int,
    metrics: Metrics,
    integrity: IntegrityCheck,
    wall_clock: Callable[[], float] = time.time,
    local_offset_seconds: Callable[[float], float] = local_utc_offset_seconds,
    in_thread: bool = True,
    first_if_none: bool = False,
) -> NoReturn:
    """Back up, verify and prune every day at local time ``at``, forever.

    A failure is logged and the next day's slot tries again; it never ends the task.
    Time is read from ``wall_clock`` and waited for with ``trio.sleep``, so a test drives
    it with trio's mock clock and ``wall_clock`` derived from ``trio.current_time()``;
    ``in_thread=False`` runs the copy on the trio thread, where the mock clock cannot
    jump while it runs. With ``first_if_none``, a store with no verified backup gets one
    at once.
    """
    directory = Path(backup_dir)
    try:
        newest = await _call(in_thread, partial(newest_verified, directory))
    except BackupError:
        log_event(logger, "backup_manifest_unreadable", level=logging.ERROR, exc_info=True)
    else:
        if newest is not None:
            metrics.backup_last_success.set(newest.created_at)
        elif first_if_none:
            # A new installation should not wait until the next slot for its first copy.
            await _scheduled_backup(
                store, directory, keep_days, metrics, integrity, wall_clock, in_thread
            )
    while True:
        slot = next_backup_time(wall_clock(), at, local_offset_seconds)
        while (remaining := slot - wall_clock()) > 0:
            await trio.sleep(min(remaining, _WALL_CLOCK_RECHECK_SECONDS))
        await _scheduled_backup(
            store, directory, keep_days, metrics, integrity, wall_clock, in_thread
        )


async def _scheduled_backup(
    store: Store,
    directory: Path,
    keep_days: int,
    metrics: Metrics,
    integrity: IntegrityCheck,
    wall_clock: Callable[[], float],
    in_thread: bool,
) -> None:
    try:
        entry = await _call(in_thread, partial(create_backup, store, directory, now=wall_clock()))
        result = await _call(in_thread, partial(verify_backup, entry, integrity=integrity))
        await _call(in_thread, partial(record_verification, directory, result, now=wall_clock()))
        if result.ok:
            metrics.backup_last_success.set(entry.created_at)
    except Exception:
        log_event(logger, "backup_failed", level=logging.ERROR, exc_info=True)
    try:
        await _call(in_thread, partial(prune_backups, directory, keep_days, wall_clock()))
    except Exception:
        log_event(logger, "backup_prune_failed", level=logging.ERROR, exc_info=True)


async def _call(in_thread: bool, fn: Callable[[], T]) -> T:
    if in_thread:
        return await trio.to_thread.run_sync(fn)
    return fn()
