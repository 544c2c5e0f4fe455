"""Backups: hot consistent copies, manifest, retention, verify, restore, schedule, CLI."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from actors import check_store
from metrics import Metrics
from storage import (
    Migration,
    SchemaTooNewError,
    Store,
    env_path,
    open_store,
    open_store_readonly,
)
from storage.backup import (
    MANIFEST_NAME,
    BackupDamagedError,
    BackupEntry,
    RestoreRefusedError,
    create_backup,
    create_backup_async,
    list_backups,
    next_backup_time,
    prune_backups,
    record_verification,
    restore_backup,
    run_backup_schedule,
    verify_backup,
)
from storage.migrations import MIGRATIONS, SCHEMA_VERSION, SUBDATABASES
from tests.conftest import sample

SUPPORT = Path(__file__).parent / "support"
CROUPIER = Path(sys.executable).parent / "croupier"
DAY = 86_400.0
T0 = datetime(2025, 3, 10, tzinfo=UTC).timestamp()
LAST_SUCCESS = "croupier_backup_last_success_timestamp_seconds"


@dataclass
class FakeReport:
    ok: bool

    def text(self) -> str:
        return "integrity: OK" if self.ok else "integrity: VIOLATIONS FOUND"


async def put_history(store: Store, *keys: bytes) -> None:
    db = store.db("history")

    def write(txn: Any) -> None:
        for key in keys:
            txn.put(key, b"entry " + key, db=db)

    await store.write(write)


def history_keys(store: Store) -> set[bytes]:
    with store.read() as txn:
        return {bytes(key) for key in txn.cursor(db=store.db("history")).iternext(values=False)}


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@contextmanager
def lock_held_by_another_process(data_dir: Path) -> Iterator[int]:
    holder = subprocess.Popen(
        [sys.executable, str(SUPPORT / "hold_lock.py"), str(data_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        yield holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)


# Taking a backup.


async def test_a_backup_under_20_concurrent_writers_is_one_consistent_snapshot(
    store: Store, tmp_path: Path
) -> None:
    """A copy taken while 20 tasks write holds exactly the writes of one snapshot."""
    history, applied = store.db("history"), store.db("applied")
    submitted = acked = 0
    goals: list[tuple[int, trio.Event]] = []
    copy_paused = trio.Event()
    resume_copy = threading.Event()
    submitted_at_pause: list[int] = []

    def pair(key: bytes) -> Any:
        # Both halves in one transaction: a consistent copy has them both or neither.
        def write(txn: Any) -> None:
            txn.put(key, b"history", db=history)
            txn.put(key, b"applied", db=applied)

        return write

    async def writer(number: int) -> None:
        nonlocal submitted, acked
        for sequence in range(1_000_000):
            submitted += 1
            await store.write(pair(b"%02d:%08d" % (number, sequence)))
            acked += 1
            for goal, reached in goals:
                if acked >= goal:
                    reached.set()

    async def acked_at_least(goal: int) -> None:
        reached = trio.Event()
        goals.append((goal, reached))
        await reached.wait()

    def hold_the_copy(done: int, total: int) -> None:
        # Runs in the backup's thread: pause the copy, its snapshot already taken, until
        # the writers have committed more, which the copy must then not contain.
        if not submitted_at_pause:
            submitted_at_pause.append(submitted)
            trio.from_thread.run_sync(copy_paused.set)
            assert resume_copy.wait(timeout=20)

    entries: list[BackupEntry] = []

    async def take_backup() -> None:
        entries.append(
            await create_backup_async(store, tmp_path / "backups", progress=hold_the_copy)
        )

    with trio.fail_after(20):
        async with trio.open_nursery() as writers:
            for number in range(20):
                writers.start_soon(writer, number)
            await acked_at_least(200)
            acked_before = acked
            async with trio.open_nursery() as backup:
                backup.start_soon(take_backup)
                await copy_paused.wait()
                await acked_at_least(acked + 200)
                resume_copy.set()
            writers.cancel_scope.cancel()
    [entry] = entries
    count = entry.records["history"]
    assert entry.records["applied"] == count
    assert acked_before <= count <= submitted_at_pause[0] < acked
    with open_store_readonly(entry.directory) as copy:
        keys = history_keys(copy)
        with copy.read() as txn:
            applied_keys = {
                bytes(key) for key in txn.cursor(db=copy.db("applied")).iternext(values=False)
            }
        assert len(keys) == count
        assert applied_keys == keys
        assert check_store(copy).ok
    assert verify_backup(entry, integrity=check_store).ok


async def test_the_manifest_records_time_size_checksum_schema_and_counts(
    store: Store, tmp_path: Path
) -> None:
    """A backup is listed with its UTC time, size, SHA-256, schema version and counts."""
    await put_history(store, b"a", b"b", b"c")
    backups = tmp_path / "backups"
    calls: list[tuple[int, int]] = []
    entry = create_backup(store, backups, now=T0 + 3661.5, progress=lambda *c: calls.append(c))
    data = (backups / "20250310T010101Z" / "data.mdb").read_bytes()
    assert entry.name == "20250310T010101Z"
    assert entry.data_file == backups / entry.name / "data.mdb"
    manifest = json.loads((backups / MANIFEST_NAME).read_text())
    assert manifest["format"] == 1
    [raw] = manifest["backups"]
    assert raw == {
        "name": "20250310T010101Z",
        "created_at": T0 + 3661.5,
        "created_utc": "2025-03-10T01:01:01Z",
        "size_bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "schema_version": SCHEMA_VERSION,
        "records": {name: 3 if name == "history" else 0 for name in SUBDATABASES},
        "verified_at": None,
        "verified_ok": None,
    }
    assert list_backups(backups) == [entry]
    assert calls[-1] == (len(data), len(data))
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert all(done <= total for done, total in calls)
    again = create_backup(store, backups, now=T0 + 3661.9)
    assert again.name == "20250310T010101Z-2"
    assert again.sha256 == entry.sha256


async def test_a_copy_that_fails_midway_leaves_nothing_listed_or_on_disk(
    store: Store, tmp_path: Path
) -> None:
    """A backup interrupted during the copy leaves no partial copy and no manifest entry."""
    await put_history(store, *(b"%06d" % n for n in range(2_000)))
    backups = tmp_path / "backups"
    first = create_backup(store, backups, now=T0)

    def fail(done: int, total: int) -> None:
        raise RuntimeError("disk unplugged")

    with pytest.raises(RuntimeError, match="disk unplugged"):
        create_backup(store, backups, now=T0 + 60, progress=fail)
    assert list_backups(backups) == [first]
    assert sorted(p.name for p in backups.iterdir() if p.is_dir()) == [first.name]


# Retention.


async def test_prune_removes_old_copies_but_never_the_newest_good_one(
    store: Store, tmp_path: Path
) -> None:
    """Retention drops copies past keep_days except the newest one that verified."""
    backups = tmp_path / "backups"
    made = [create_backup(store, backups, now=T0 + day * DAY) for day in range(5)]
    record_verification(backups, verify_backup(made[1], integrity=check_store), now=T0)
    bad = verify_backup(made[3], integrity=lambda copy: FakeReport(ok=False))
    record_verification(backups, bad, now=T0)

    removed = prune_backups(backups, keep_days=2, now=T0 + 4 * DAY + 1)
    assert {e.name for e in removed} == {made[0].name, made[2].name}
    assert not made[0].directory.exists() and not made[2].directory.exists()
    assert [e.name for e in list_backups(backups)] == [made[4].name, made[3].name, made[1].name]

    prune_backups(backups, keep_days=2, now=T0 + 100 * DAY)
    assert [e.name for e in list_backups(backups)] == [made[1].name]
    assert made[1].directory.exists()


async def test_prune_without_any_verified_copy_keeps_the_newest(
    store: Store, tmp_path: Path
) -> None:
    """With nothing verified yet, retention keeps the newest copy rather than none."""
    backups = tmp_path / "backups"
    made = [create_backup(store, backups, now=T0 + day * DAY) for day in range(3)]
    prune_backups(backups, keep_days=1, now=T0 + 30 * DAY)
    assert list_backups(backups) == [made[2]]


async def test_prune_removes_old_unlisted_copies_and_partials_only(
    store: Store, tmp_path: Path
) -> None:
    """Copies a crash left unlisted go once past retention; other files are left alone."""
    backups = tmp_path / "backups"
    create_backup(store, backups, now=T0)
    old_orphan, old_partial = backups / "20240101T000000Z", backups / ".partial-abc"
    new_partial, unrelated = backups / ".partial-def", backups / "notes"
    for path in (old_orphan, old_partial, new_partial, unrelated):
        path.mkdir()
    for path in (old_orphan, old_partial, unrelated):
        os.utime(path, (T0 - 30 * DAY, T0 - 30 * DAY))
    os.utime(new_partial, (T0, T0))
    prune_backups(backups, keep_days=7, now=T0 + DAY)
    assert not old_orphan.exists() and not old_partial.exists()
    assert new_partial.exists() and unrelated.exists()


# Verifying.


async def test_verify_passes_a_good_copy_by_entry_and_by_path(store: Store, tmp_path: Path) -> None:
    """A fresh copy verifies, found either from its entry or from its directory."""
    await put_history(store, b"x")
    entry = create_backup(store, tmp_path / "backups")
    assert verify_backup(entry, integrity=check_store).ok
    result = verify_backup(entry.directory, integrity=check_store)
    assert result.ok and result.summary() == "ok"
    assert result.integrity_text is not None and "integrity: OK" in result.integrity_text


async def test_verify_catches_a_flipped_byte(store: Store, tmp_path: Path) -> None:
    """One flipped byte fails the checksum."""
    await put_history(store, b"x")
    entry = create_backup(store, tmp_path / "backups")
    flip_a_byte(entry.data_file)
    result = verify_backup(entry, integrity=check_store)
    assert not result.ok
    assert "checksum mismatch" in result.summary()


async def test_verify_catches_a_missing_file(store: Store, tmp_path: Path) -> None:
    """A copy whose data file is gone fails, naming the file."""
    entry = create_backup(store, tmp_path / "backups")
    entry.data_file.unlink()
    result = verify_backup(entry, integrity=check_store)
    assert not result.ok
    assert f"{entry.data_file} is missing" in result.summary()


async def test_verify_fails_when_the_integrity_check_fails(store: Store, tmp_path: Path) -> None:
    """An intact copy whose integrity check reports violations does not verify."""
    entry = create_backup(store, tmp_path / "backups")
    result = verify_backup(entry, integrity=lambda copy: FakeReport(ok=False))
    assert result.problems == ("the integrity check found violations",)
    assert result.integrity_text == "integrity: VIOLATIONS FOUND"


async def test_verify_catches_a_schema_version_that_disagrees_with_the_manifest(
    store: Store, tmp_path: Path
) -> None:
    """A manifest entry whose schema version is not the copy's fails verification."""
    backups = tmp_path / "backups"
    entry = create_backup(store, backups)
    manifest = json.loads((backups / MANIFEST_NAME).read_text())
    manifest["backups"][0]["schema_version"] = SCHEMA_VERSION + 1
    (backups / MANIFEST_NAME).write_text(json.dumps(manifest))
    result = verify_backup(entry.directory, integrity=check_store)
    assert result.problems == (
        f"schema version reads {SCHEMA_VERSION}, the manifest says {SCHEMA_VERSION + 1}",
    )


async def test_a_backup_from_a_newer_schema_fails_verify_and_is_not_restored(
    tmp_path: Path,
) -> None:
    """A copy made by a newer Croupier neither verifies nor restores here."""
    data, backups = tmp_path / "data", tmp_path / "backups"
    future = (*MIGRATIONS, Migration("0099_future", lambda env, txn: None))
    async with open_store(data, migrations=future) as store:
        entry = await create_backup_async(store, backups)
    assert entry.schema_version == SCHEMA_VERSION + 1
    result = verify_backup(entry, integrity=check_store)
    assert result.problems == (
        f"schema version {SCHEMA_VERSION + 1} is newer than {SCHEMA_VERSION}; "
        f"verify it with the Croupier that wrote it",
    )
    with pytest.raises(SchemaTooNewError):
        restore_backup(data, entry)
    assert not list(data.glob("replaced-*"))


# Restoring.


async def test_restore_refuses_while_another_process_holds_the_lock(tmp_path: Path) -> None:
    """Restore names the pid of the running server and changes nothing."""
    data, backups = tmp_path / "data", tmp_path / "backups"
    async with open_store(data) as store:
        await put_history(store, b"kept")
        entry = await create_backup_async(store, backups)
    before = (env_path(data) / "data.mdb").read_bytes()
    with lock_held_by_another_process(data) as pid:
        with pytest.raises(RestoreRefusedError) as refused:
            restore_backup(data, entry)
        assert refused.value.holder_pid == pid
        assert f"pid {pid}" in str(refused.value)
    assert (env_path(data) / "data.mdb").read_bytes() == before
    assert sorted(p.name for p in data.iterdir()) == ["croupier.lock", "lmdb"]


async def test_restore_brings_back_the_backup_and_keeps_the_replaced_store(
    tmp_path: Path,
) -> None:
    """After a restore the store holds the backup's data; the old store sits aside."""
    data, backups = tmp_path / "data", tmp_path / "backups"
    async with open_store(data) as store:
        await put_history(store, b"before")
        entry = await create_backup_async(store, backups)
        await put_history(store, b"after")
    calls: list[tuple[int, int]] = []
    replaced = restore_backup(data, entry, now=T0, progress=lambda *c: calls.append(c))
    assert replaced == data / "replaced-20250310T000000Z"
    assert calls[-1] == (entry.size_bytes, entry.size_bytes)
    with open_store_readonly(replaced) as old:
        assert history_keys(old) == {b"before", b"after"}
    async with open_store(data) as store:
        assert history_keys(store) == {b"before"}
        assert check_store(store).ok
    assert restore_backup(data, entry, now=T0) == data / "replaced-20250310T000000Z-2"


async def test_restore_of_a_damaged_backup_changes_nothing(tmp_path: Path) -> None:
    """A backup that fails its checksum is refused before the store is touched."""
    data, backups = tmp_path / "data", tmp_path / "backups"
    async with open_store(data) as store:
        await put_history(store, b"live")
        entry = await create_backup_async(store, backups)
    flip_a_byte(entry.data_file)
    with pytest.raises(BackupDamagedError, match="checksum"):
        restore_backup(data, entry)
    assert sorted(p.name for p in data.iterdir()) == ["croupier.lock", "lmdb"]
    async with open_store(data) as store:
        assert history_keys(store) == {b"live"}


# The schedule.


def _spring_forward(when: float) -> float:
    """A zone at UTC+1 that moves to UTC+2 at T0 + 1 h (local 02:00 becomes 03:00)."""
    return 3600.0 if when < T0 + 3600 else 7200.0


def _fall_back(when: float) -> float:
    """A zone at UTC+2 that moves to UTC+1 at T0 + 1 h (local 03:00 becomes 02:00)."""
    return 7200.0 if when < T0 + 3600 else 3600.0


@pytest.mark.parametrize(
    ("now", "at", "offset", "expected"),
    [
        (T0, "03:30", lambda t: -5 * 3600.0, T0 + 8.5 * 3600),
        (T0 + 8.5 * 3600, "03:30", lambda t: -5 * 3600.0, T0 + 32.5 * 3600),
        (T0 - 3600, "00:00", lambda t: 0.0, T0),
        (T0 - 7200, "04:00", _spring_forward, T0 + 2 * 3600),
        (T0 - 7200, "02:30", _spring_forward, T0 + 1.5 * 3600),
        (T0 - 7200, "05:00", _fall_back, T0 + 4 * 3600),
        (T0 - 7200, "02:30", _fall_back, T0 + 0.5 * 3600),
    ],
)
def test_next_backup_time_follows_local_time_across_dst(
    now: float, at: str, offset: Any, expected: float
) -> None:
    """The next slot is the local HH:MM after now, with the offset in force at that moment."""
    assert next_backup_time(now, at, offset) == expected


async def test_the_schedule_fires_at_local_time_verifies_and_prunes(
    store: Store, metrics: Metrics, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Daily backups happen at the local HH:MM, verify, set the gauge, and old ones go."""
    backups = tmp_path / "backups"
    start = trio.current_time()

    def wall_clock() -> float:
        return T0 + trio.current_time() - start

    await put_history(store, b"x")
    older = create_backup(store, backups, now=T0 - 3 * DAY)
    record_verification(backups, verify_backup(older, integrity=check_store), now=T0)
    schedule = partial(
        run_backup_schedule,
        store,
        backups,
        at="03:30",
        keep_days=2,
        metrics=metrics,
        integrity=check_store,
        wall_clock=wall_clock,
        local_offset_seconds=lambda when: -5 * 3600.0,
        in_thread=False,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(schedule)
        await trio.sleep(8.5 * 3600 - 1)
        assert sample(metrics, LAST_SUCCESS) == older.created_at
        assert [e.name for e in list_backups(backups)] == [older.name]
        await trio.sleep(2)
        [first] = list_backups(backups)
        assert first.name == "20250310T083000Z"
        assert first.verified_ok is True
        assert sample(metrics, LAST_SUCCESS) == first.created_at == T0 + 8.5 * 3600
        await trio.sleep(4 * DAY)
        names = [e.name for e in list_backups(backups)]
        assert names == ["20250314T083000Z", "20250313T083000Z", "20250312T083000Z"]
        assert sample(metrics, LAST_SUCCESS) == T0 + 4 * DAY + 8.5 * 3600
        nursery.cancel_scope.cancel()


async def test_failed_scheduled_backups_are_logged_and_retried_next_day(
    store: Store,
    metrics: Metrics,
    tmp_path: Path,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A copy that cannot be written, then one that fails verification, are logged, leave
    the gauge alone, and the task goes on to succeed at the next slot."""
    backups = tmp_path / "backups"
    backups.write_text("not a directory")
    healthy = False
    start = trio.current_time()
    schedule = partial(
        run_backup_schedule,
        store,
        backups,
        at="00:00",
        keep_days=7,
        metrics=metrics,
        integrity=lambda copy: FakeReport(ok=healthy),
        wall_clock=lambda: T0 - 60 + trio.current_time() - start,
        local_offset_seconds=lambda when: 0.0,
        in_thread=False,
    )
    caplog.set_level(logging.INFO, logger="croupier.backup")

    def events() -> list[str]:
        return [getattr(record, "event", "") for record in caplog.records]

    async with trio.open_nursery() as nursery:
        nursery.start_soon(schedule)
        await trio.sleep(120)
        assert events() == ["backup_manifest_unreadable", "backup_failed"]
        backups.unlink()
        caplog.clear()
        await trio.sleep(DAY)
        [unverified] = list_backups(backups)
        assert unverified.verified_ok is False
        assert [(r.levelno, getattr(r, "event", "")) for r in caplog.records] == [
            (logging.INFO, "backup_created"),
            (logging.ERROR, "backup_verified"),
        ]
        assert sample(metrics, LAST_SUCCESS) == 0
        healthy = True
        await trio.sleep(DAY)
        good, _ = list_backups(backups)
        assert good.created_at == T0 + 2 * DAY and good.verified_ok is True
        assert sample(metrics, LAST_SUCCESS) == T0 + 2 * DAY
        nursery.cancel_scope.cancel()


# The command line.


async def croupier(data: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROUPIER_")}
    env["CROUPIER_DATA_DIR"] = str(data)
    return await trio.run_process(
        [str(CROUPIER), "backup", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )


def one_error_line(done: subprocess.CompletedProcess[bytes]) -> str:
    assert done.returncode == 1
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


async def test_the_cli_creates_lists_verifies_and_restores(tmp_path: Path) -> None:
    """`croupier backup` end to end in real processes, including beside a running server."""
    data = tmp_path / "data"
    async with open_store(data) as store:
        await put_history(store, b"one", b"two")
    with lock_held_by_another_process(data) as pid:
        created = await croupier(data, "create")
        assert created.returncode == 0, created.stderr
        match = re.match(rb"created backup (\d{8}T\d{6}Z) ", created.stdout)
        assert match is not None, created.stdout
        name = match.group(1).decode()
        refused = await croupier(data, "restore", "latest", "--yes")
        assert f"pid {pid}" in one_error_line(refused)

    listed = await croupier(data, "list")
    assert listed.returncode == 0
    assert re.search(rf"^{name} .* never$", listed.stdout.decode(), re.MULTILINE)
    verified = await croupier(data, "verify", "--all")
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.decode().splitlines() == [f"{name}: ok"]
    assert " ok " in (await croupier(data, "list")).stdout.decode()

    unconfirmed = await croupier(data, "restore", name)
    assert "--yes" in one_error_line(unconfirmed)
    assert not list(data.glob("replaced-*"))
    restored = await croupier(data, "restore", name, "--yes")
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.decode().startswith(f"restored backup {name} into {env_path(data)}")
    assert b"\r" not in restored.stderr
    [replaced] = data.glob("replaced-*")
    with open_store_readonly(env_path(data)) as store:
        assert history_keys(store) == {b"one", b"two"}
    with open_store_readonly(replaced) as store:
        assert history_keys(store) == {b"one", b"two"}

    flip_a_byte(data / "backups" / name / "data.mdb")
    damaged = await croupier(data, "verify", name)
    assert "checksum mismatch" in one_error_line(damaged)
    missing = await croupier(data, "verify", "20200101T000000Z")
    assert "croupier backup list" in one_error_line(missing)
