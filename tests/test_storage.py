"""Storage: codec, group-commit writer, map growth, migrations, instance lock, durability."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmdb
import pytest
import trio

from limits import Limits
from metrics import Metrics
from storage import (
    InstanceLock,
    InstanceLockedError,
    Migration,
    RecordCodec,
    RecordDecodeError,
    RecordVersionError,
    SchemaTooNewError,
    StorageError,
    Store,
    open_store,
    open_store_readonly,
    packb,
)
from storage.migrations import MIGRATIONS, read_schema_version
from tests.conftest import sample

SUPPORT = Path(__file__).parent / "support"


@dataclass
class Thing:
    name: str
    count: int
    extra: dict[str, Any] = field(default_factory=dict)


def _add_tag(fields: dict[str, Any]) -> dict[str, Any]:
    return {**fields, "count": fields.get("count", 0)}


THING_V2 = RecordCodec(Thing, kind="thing", version=2, upgrades={1: _add_tag})


def test_codec_round_trip_keeps_unknown_fields() -> None:
    """Fields written by a newer minor change survive a read-modify-write."""
    data = packb({"v": 2, "name": "a", "count": 1, "colour": "red"})
    thing = THING_V2.decode(data)
    assert thing.extra == {"colour": "red"}
    thing.count += 1
    again = THING_V2.decode(THING_V2.encode(thing))
    assert again == Thing("a", 2, {"colour": "red"})


def test_codec_upgrades_old_versions() -> None:
    """A version-1 record is upgraded step by step on read."""
    assert THING_V2.decode(packb({"v": 1, "name": "old"})) == Thing("old", 0)


def test_codec_refuses_newer_versions() -> None:
    """A record from a newer Croupier is a clear error, never silently truncated."""
    with pytest.raises(RecordVersionError, match="version 3, newer than the 2"):
        THING_V2.decode(packb({"v": 3, "name": "x", "count": 1}))


@pytest.mark.parametrize("data", [b"\xc1", packb([1, 2]), packb({"name": "no version"})])
def test_codec_rejects_garbage(data: bytes) -> None:
    """Bytes that are not a versioned record raise a decode error."""
    with pytest.raises(RecordDecodeError):
        THING_V2.decode(data)


async def test_ten_thousand_concurrent_writes_are_durable_and_visible(
    store: Store, metrics: Metrics
) -> None:
    """10,000 concurrent submissions all commit, are visible, and share few commits."""
    db = store.db("history")

    async def put(i: int) -> int:
        key = i.to_bytes(4, "big")
        return await store.write(lambda txn: (txn.put(key, key, db=db), i)[1])

    results: list[int] = []

    async def run(i: int) -> None:
        results.append(await put(i))

    async with trio.open_nursery() as nursery:
        for i in range(10_000):
            nursery.start_soon(run, i)
    assert sorted(results) == list(range(10_000))
    with store.read() as txn:
        assert txn.stat(db)["entries"] == 10_000
    commits = sample(metrics, "croupier_writer_batch_writes_count")
    assert commits < 1_000, "group commit should batch concurrent writes"
    assert sample(metrics, "croupier_writer_requests_total", outcome="ok") == 10_000


async def test_a_failing_request_fails_alone(store: Store) -> None:
    """One request raising in a batch rolls back only its own writes."""
    db = store.db("history")

    class Boom(Exception):
        pass

    def bad(txn: Any) -> None:
        txn.put(b"bad", b"1", db=db)
        raise Boom

    outcomes: dict[int, object] = {}

    async def run(i: int) -> None:
        try:
            if i == 50:
                await store.write(bad)
            else:
                await store.write(lambda txn: txn.put(b"k%d" % i, b"v", db=db))
            outcomes[i] = "ok"
        except Boom:
            outcomes[i] = "boom"

    async with trio.open_nursery() as nursery:
        for i in range(100):
            nursery.start_soon(run, i)
    assert outcomes[50] == "boom"
    assert sum(1 for v in outcomes.values() if v == "ok") == 99
    with store.read() as txn:
        assert txn.get(b"bad", db=db) is None
        assert txn.stat(db)["entries"] == 99


async def test_lmdb_errors_reach_the_requester_typed(store: Store) -> None:
    """An LMDB error inside a request becomes a StorageError for that requester."""
    db = store.db("history")
    with pytest.raises(StorageError, match="write failed"):
        await store.write(lambda txn: txn.put(b"", b"empty keys are invalid", db=db))
    assert await store.write(lambda txn: txn.put(b"fine", b"1", db=db)) is True


async def test_map_grows_from_a_tiny_map(tmp_path: Path, metrics: Metrics) -> None:
    """Writes past a 64 KiB initial map succeed by growing the map."""
    limits = Limits(map_bytes_initial=64 * 1024)
    async with open_store(tmp_path, limits=limits, metrics=metrics) as store:
        db = store.db("history")
        value = b"x" * 1000
        for batch in range(20):
            async with trio.open_nursery() as nursery:
                for i in range(50):
                    key = b"%d:%d" % (batch, i)
                    nursery.start_soon(store.write, lambda txn, key=key: txn.put(key, value, db=db))
        with store.read() as txn:
            assert txn.stat(db)["entries"] == 1000
        growths = sum(
            sample(metrics, "croupier_writer_map_growths_total", trigger=trigger)
            for trigger in ("early", "full")
        )
        assert growths >= 1
        assert store.map_usage()[1] > 64 * 1024


async def test_the_writer_grows_the_map_ahead_of_need_without_waiting_for_readers(
    tmp_path: Path, metrics: Metrics
) -> None:
    """Past the grow-at ratio the writer grows the map before it is full. While a long
    reader holds the gate, writes that fit go on without waiting for it, and the map
    grows at the first commit after the reader is done."""
    size = 1 << 20
    limits = Limits(map_bytes_initial=size, map_used_ratio_grow_at=0.5)
    async with open_store(tmp_path, limits=limits, metrics=metrics) as store:
        db = store.db("history")
        value = b"x" * 2000
        store.map_gate.acquire()  # as an integrity check or a backup does
        try:
            written = 0
            while store.map_usage()[0] < 0.6 * size:
                key = b"%d" % written
                await store.write(lambda txn, key=key: txn.put(key, value, db=db))
                written += 1
            assert store.map_usage()[1] == size
        finally:
            store.map_gate.release()
        await store.write(lambda txn: txn.put(b"after", value, db=db))
        used, grown = store.map_usage()
        assert grown == 2 * size and used < 0.5 * grown
        assert sample(metrics, "croupier_writer_map_growths_total", trigger="early") == 1
        assert sample(metrics, "croupier_writer_map_growths_total", trigger="full") == 0
        with store.read() as txn:
            assert txn.stat(db)["entries"] == written + 1


async def test_migrations_run_once_and_record_themselves(tmp_path: Path) -> None:
    """Migrations apply in order on first open and are a no-op on the next."""
    async with open_store(tmp_path) as store:
        assert store.migrations_applied == [m.name for m in MIGRATIONS]
        assert store.schema_version == len(MIGRATIONS)
    async with open_store(tmp_path) as store:
        assert store.migrations_applied == []
        assert store.schema_version == len(MIGRATIONS)


async def test_a_new_migration_applies_on_the_next_open(tmp_path: Path) -> None:
    """An added migration runs exactly once, in its own transaction."""
    runs: list[int] = []

    def extra(env: lmdb.Environment, txn: Any) -> None:
        runs.append(1)
        db = env.open_db(b"wallets", txn=txn)
        txn.put(b"migrated", b"yes", db=db)

    more = (*MIGRATIONS, Migration("0099_test_extra", extra))
    async with open_store(tmp_path):
        pass
    async with open_store(tmp_path, migrations=more) as store:
        assert store.migrations_applied == ["0099_test_extra"]
        with store.read() as txn:
            assert txn.get(b"migrated", db=store.db("wallets")) == b"yes"
    async with open_store(tmp_path, migrations=more) as store:
        assert store.migrations_applied == []
    assert runs == [1]


async def test_a_newer_schema_refuses_to_open(tmp_path: Path) -> None:
    """A store migrated by newer code is refused with a clear error."""
    more = (*MIGRATIONS, Migration("0099_future", lambda env, txn: None))
    async with open_store(tmp_path, migrations=more):
        pass
    with pytest.raises(SchemaTooNewError, match="newer than"):
        async with open_store(tmp_path):
            pass


def test_instance_lock_excludes_a_second_process(tmp_path: Path) -> None:
    """A second process is refused while the first holds the lock, and a SIGKILL frees it."""
    holder = subprocess.Popen(
        [sys.executable, str(SUPPORT / "hold_lock.py"), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(InstanceLockedError) as caught:
            InstanceLock(tmp_path).acquire()
        assert caught.value.holder_pid == holder.pid
        assert f"pid {holder.pid}" in str(caught.value)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    with InstanceLock(tmp_path):
        pass


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    """Every write a killed writer process acknowledged is in the store after reopening."""
    proc = subprocess.Popen(
        [sys.executable, str(SUPPORT / "writer_load.py"), str(tmp_path), "200"],
        stdout=subprocess.PIPE,
        text=True,
    )
    acknowledged: list[str] = []
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        while len(acknowledged) < 5_000:
            line = proc.stdout.readline()
            assert line, "writer exited early"
            acknowledged.append(line.strip())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        acknowledged.extend(line.strip() for line in proc.stdout if line.endswith("\n"))
    finally:
        if proc.poll() is None:
            proc.kill()
    env = lmdb.open(str(tmp_path / "lmdb"), max_dbs=64, readonly=True, lock=False)
    try:
        db = env.open_db(b"history", create=False)
        with env.begin() as txn:
            missing = [k for k in acknowledged if txn.get(k.encode(), db=db) is None]
    finally:
        env.close()
    assert missing == []
    assert len(acknowledged) >= 5_000


async def test_a_read_only_store_reads_its_meta_record(tmp_path: Path) -> None:
    """Every handle of a store opened read-only stays usable after opening."""
    async with open_store(tmp_path):
        pass
    with open_store_readonly(tmp_path / "lmdb") as store, store.read() as txn:
        assert read_schema_version(txn, store.db("meta")) == len(MIGRATIONS)


async def test_a_map_that_cannot_grow_fails_its_batch_typed_and_the_writer_goes_on(
    tmp_path: Path, metrics: Metrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If growing the map fails, the writes that needed it get a StorageError naming the
    cause, nothing of them is stored, and later writes that fit are served."""
    limits = Limits(map_bytes_initial=64 * 1024, map_used_ratio_grow_at=1.0)
    async with open_store(tmp_path, limits=limits, metrics=metrics) as store:
        db = store.db("history")

        async def cannot_grow() -> None:
            raise lmdb.Error("simulated: no address space")

        monkeypatch.setattr(store._writer, "_grow_map", cannot_grow)
        with pytest.raises(StorageError, match="could not grow: simulated"):
            await store.write(lambda txn: txn.put(b"big", b"x" * 200_000, db=db))
        assert await store.write(lambda txn: txn.put(b"small", b"x", db=db)) is True
        with store.read() as txn:
            assert txn.get(b"big", db=db) is None and txn.get(b"small", db=db) == b"x"
