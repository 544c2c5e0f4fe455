"""The LMDB environment, its sub-databases and its single writer.

``open_store`` is the one way in: it takes the instance lock, opens the environment, runs
migrations, starts the group-commit writer and, on exit, drains the writer before closing.
Reads are plain LMDB read transactions on the caller's thread (they never block on a
writer); every write goes through ``Store.write``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import lmdb
import trio

from limits import DEFAULT_LIMITS, Limits, subdatabases_max
from metrics import Metrics, new_metrics
from storage.errors import StorageError, WriterClosedError
from storage.lock import InstanceLock
from storage.migrations import (
    META_DB,
    MIGRATIONS,
    SUBDATABASES,
    Migration,
    migrate,
    read_schema_version,
)
from storage.writer import WriteFn, Writer

T = TypeVar("T")

log = logging.getLogger("croupier.storage")

ENV_DIR_NAME = "lmdb"


class ReadTxn:
    """A read-only transaction that drops its LMDB transaction when its block ends.

    Cursors it hands out still refer to the transaction: do not keep one across an
    ``await`` (read into a list inside the block instead).
    """

    __slots__ = ("_txn",)

    def __init__(self, txn: Any) -> None:
        self._txn: Any = txn

    def get(self, key: bytes, default: Any = None, *, db: Any) -> Any:
        return self._txn.get(key, default, db=db)

    def cursor(self, db: Any) -> Any:
        return self._txn.cursor(db=db)

    def stat(self, db: Any) -> dict[str, int]:
        stat: dict[str, int] = self._txn.stat(db)
        return stat

    def release(self) -> None:
        self._txn = None


class _ReadBlock:
    """``with store.read() as txn``: a plain class, cheaper than a generator-based
    context manager on the hottest read path."""

    __slots__ = ("_env", "_txn", "_view")

    def __init__(self, env: lmdb.Environment) -> None:
        self._env = env

    def __enter__(self) -> ReadTxn:
        self._txn = self._env.begin(buffers=False)
        self._view = ReadTxn(self._txn)
        return self._view

    def __exit__(self, *exc_info: object) -> None:
        self._view.release()
        self._txn.abort()
        del self._txn, self._view


class Store:
    """An open store: sub-database handles, reads, and writes through the writer."""

    def __init__(
        self,
        env: lmdb.Environment,
        path: Path,
        *,
        limits: Limits,
        metrics: Metrics,
    ) -> None:
        self.env = env
        self.path = path
        self.limits = limits
        self.metrics = metrics
        self.migrations_applied: list[str] = []
        self.dbs: dict[str, Any] = {}
        self._writer: Writer | None = None
        # Threads that read for a long time (backups, integrity checks) hold this while
        # they read; growing the map takes it, because LMDB forbids changing the map size
        # while any transaction of this process is open.
        self.map_gate = threading.Lock()
        # Handles are opened outside any caller's transaction: one opened inside a
        # read-only transaction is not kept once that transaction ends.
        meta = env.open_db(META_DB, create=False)
        with env.begin() as txn:
            self.schema_version = read_schema_version(txn, meta)
        self.dbs["meta"] = meta
        for name in SUBDATABASES:
            # Only a read-only copy made before the migration that added a sub-database
            # lacks it (a writable store is migrated before this); readers treat a
            # missing one as empty.
            with contextlib.suppress(lmdb.NotFoundError):
                self.dbs[name] = env.open_db(name.encode(), create=False)
        self.update_map_metrics()

    def db(self, name: str) -> Any:
        return self.dbs[name]

    def read(self) -> _ReadBlock:
        """A read-only snapshot for a ``with`` block; keep it short on the trio thread.

        py-lmdb gives a read transaction's reader slot back only when the transaction
        object is freed, not when it ends. A ``txn`` variable left in a coroutine's frame
        across an ``await`` would hold a slot, and thousands of concurrent coroutines
        would exhaust the reader table, so the caller gets a ``ReadTxn`` that lets go of
        the transaction when the block ends.
        """
        return _ReadBlock(self.env)

    async def write(self, fn: WriteFn[T]) -> T:
        """Run ``fn(txn)`` in the next group commit and return its result once durable.

        ``fn`` may run more than once (a batch is retried after the map grows, or applied
        again request by request when one request of it fails), so it must only read and
        write through ``txn`` and compute the same writes from the same state.
        """
        if self._writer is None:
            raise WriterClosedError("this store was opened read-only")
        return await self._writer.submit(fn)

    def map_usage(self) -> tuple[int, int]:
        """(bytes in use, map size in bytes)."""
        info = self.env.info()
        page_size = self.env.stat()["psize"]
        return (info["last_pgno"] + 1) * page_size, info["map_size"]

    def update_map_metrics(self) -> None:
        used, size = self.map_usage()
        self.metrics.lmdb_map_size.set(size)
        self.metrics.lmdb_map_used.set(used / size)

    async def grow_map(self) -> None:
        """Double the map. Waits (off the trio thread) for long threaded readers."""
        await trio.to_thread.run_sync(self.map_gate.acquire)
        try:
            # On the trio thread no read transaction is open while this synchronous
            # code runs, and the gate keeps reader threads out.
            _, size = self.map_usage()
            self.env.set_mapsize(size * self.limits.map_bytes_growth_factor)
        finally:
            self.map_gate.release()
        self.update_map_metrics()

    def grow_map_early(self) -> bool:
        """Grow the map now if it is fuller than ``map_used_ratio_grow_at`` and no long
        reader holds the gate; never waits. True if it grew.

        Called by the writer between commits, when no write transaction is open and the
        trio thread holds no read transaction (this is synchronous code)."""
        used, size = self.map_usage()
        if used < size * self.limits.map_used_ratio_grow_at:
            return False
        if not self.map_gate.acquire(blocking=False):
            return False
        try:
            self.env.set_mapsize(size * self.limits.map_bytes_growth_factor)
        except lmdb.Error:
            # Not fatal here: the map is not full yet, and growing after a MapFullError
            # is still there (and reports its failure to the writes that need it).
            log.warning("could not grow the LMDB map ahead of need", exc_info=True)
            return False
        finally:
            self.map_gate.release()
        self.update_map_metrics()
        return True

    def attach_writer(self, writer: Writer) -> None:
        self._writer = writer


def env_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / ENV_DIR_NAME


def open_environment(path: Path, *, map_size: int, readonly: bool = False) -> lmdb.Environment:
    """Open (creating when writable) the LMDB environment at ``path``."""
    if not readonly:
        path.mkdir(parents=True, exist_ok=True)
    try:
        return lmdb.open(
            str(path),
            map_size=map_size,
            max_dbs=subdatabases_max,
            subdir=True,
            readonly=readonly,
            sync=True,
            metasync=True,
            readahead=False,
            max_readers=256,
            lock=True,
        )
    except lmdb.Error as exc:
        raise StorageError(f"cannot open LMDB environment at {path}: {exc}") from exc


@asynccontextmanager
async def open_store(
    data_dir: str | os.PathLike[str],
    *,
    limits: Limits = DEFAULT_LIMITS,
    metrics: Metrics | None = None,
    migrations: tuple[Migration, ...] = MIGRATIONS,
    lock: bool = True,
    commit_in_thread: bool = True,
) -> AsyncIterator[Store]:
    """Lock ``data_dir``, open and migrate its store, and run the writer until exit.

    ``commit_in_thread=False`` commits on the trio thread. It exists for tests on trio's
    autojump mock clock, which would otherwise see a task waiting on the writer thread
    as blocked and jump time forward under it.
    """
    metrics = metrics if metrics is not None else new_metrics()
    instance_lock = InstanceLock(data_dir)
    if lock:
        instance_lock.acquire()
    try:
        env = open_environment(env_path(data_dir), map_size=limits.map_bytes_initial)
        try:
            applied = migrate(env, migrations)
            store = Store(env, env_path(data_dir), limits=limits, metrics=metrics)
            store.migrations_applied = applied
            writer = Writer(
                env,
                limits=limits,
                metrics=metrics,
                grow_map=store.grow_map,
                grow_map_early=store.grow_map_early,
                commit_in_thread=commit_in_thread,
            )
            store.attach_writer(writer)
            async with trio.open_nursery() as nursery:
                await nursery.start(writer.run)
                try:
                    yield store
                finally:
                    with trio.CancelScope(shield=True):
                        await writer.close()
        finally:
            env.close()
    finally:
        instance_lock.release()


@contextmanager
def open_store_readonly(
    env_dir: str | os.PathLike[str], *, metrics: Metrics | None = None
) -> Iterator[Store]:
    """Open an LMDB environment directory (a live store's or a backup copy) to read only."""
    path = Path(env_dir)
    if not (path / "data.mdb").exists():
        raise StorageError(f"no LMDB store at {path}")
    env = open_environment(path, map_size=DEFAULT_LIMITS.map_bytes_initial, readonly=True)
    try:
        yield Store(env, path, limits=DEFAULT_LIMITS, metrics=metrics or new_metrics())
    finally:
        env.close()
