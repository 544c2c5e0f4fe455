"""The group-commit writer: one LMDB write transaction for many requests.

Actors submit a request: a function that runs against a write transaction and returns a
result. The writer task gathers every request submitted while the previous commit ran into
one batch, applies each in its own nested transaction (so a failing request is rolled back
alone and fails only its submitter), commits and fsyncs once in a worker thread, then wakes
every waiter of the batch. Nothing is acknowledged before its commit is durable.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import lmdb
import trio

from limits import Limits
from metrics import Metrics
from storage.errors import StorageError, WriterClosedError

T = TypeVar("T")
WriteFn = Callable[[Any], T]


class _Request(Generic[T]):
    __slots__ = ("error", "fn", "result")

    def __init__(self, fn: WriteFn[T]) -> None:
        self.fn = fn
        self.result: T | None = None
        self.error: BaseException | None = None


class _CommitBatch:
    __slots__ = ("done", "requests")

    def __init__(self) -> None:
        self.requests: list[_Request[Any]] = []
        self.done = trio.Event()


class _MapFull(Exception):
    """Raised inside the worker thread when the batch did not fit the map."""


class Writer:
    """Serializes all writes to one LMDB environment through group commits."""

    def __init__(
        self,
        env: lmdb.Environment,
        *,
        limits: Limits,
        metrics: Metrics,
        grow_map: Callable[[], Awaitable[None]],
        grow_map_early: Callable[[], bool] | None = None,
        commit_in_thread: bool = True,
    ) -> None:
        self._env = env
        self._commit_in_thread = commit_in_thread
        self._limits = limits
        self._metrics = metrics
        self._grow_map = grow_map
        self._grow_map_early = grow_map_early
        self._queue: deque[_CommitBatch] = deque()
        self._queued_requests = 0
        self._work = trio.lowlevel.ParkingLot()
        self._space = trio.lowlevel.ParkingLot()
        self._closed = False
        self._stopped = trio.Event()

    async def submit(self, fn: WriteFn[T]) -> T:
        """Run ``fn(txn)`` in the next group commit; return its result once durable.

        An exception raised by ``fn`` is re-raised here and rolls back only ``fn``'s own
        writes. If the caller is cancelled after submitting, the write may still commit:
        that is why every mutation carries an idempotency key.
        """
        while self._queued_requests >= self._limits.writer_queue_requests_max:
            if self._closed:
                raise WriterClosedError("the writer is closed")
            await self._space.park()
        if self._closed:
            raise WriterClosedError("the writer is closed")
        request: _Request[T] = _Request(fn)
        batch = self._queue[-1] if self._queue else None
        if batch is None or len(batch.requests) >= self._limits.batch_writes_max:
            batch = _CommitBatch()
            self._queue.append(batch)
        batch.requests.append(request)
        self._queued_requests += 1
        # Write side of the batch and queue bounds; ``run`` checks the read side. No await
        # since the wait above, so the bound it waited for still holds.
        assert len(batch.requests) <= self._limits.batch_writes_max, len(batch.requests)
        assert self._queued_requests <= self._limits.writer_queue_requests_max
        if self._work:
            self._work.unpark_all()
        await batch.done.wait()
        if request.error is not None:
            raise request.error
        return request.result  # type: ignore[return-value]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The writer task. Returns after ``close`` once every queued request is done."""
        task_status.started()
        try:
            while True:
                if not self._queue:
                    if self._closed:
                        return
                    await self._work.park()
                    continue
                if self._limits.batch_linger_seconds_max > 0:
                    await trio.sleep(self._limits.batch_linger_seconds_max)
                batch = self._queue.popleft()
                self._queued_requests -= len(batch.requests)
                # Read side of ``submit``'s bounds: a queued batch is never empty nor
                # over its size, and the count of queued requests matches the queue.
                assert 0 < len(batch.requests) <= self._limits.batch_writes_max, len(batch.requests)
                assert self._queued_requests >= 0, self._queued_requests
                assert not batch.done.is_set()
                self._space.unpark_all()
                if self._grow_map_early is not None and self._grow_map_early():
                    self._metrics.writer_map_growths.labels("early").inc()
                await self._commit(batch)
        finally:
            self._closed = True
            self._fail_queued(WriterClosedError("the writer stopped before this write"))
            self._stopped.set()

    async def close(self) -> None:
        """Stop taking requests, finish the queued ones, and wait for the writer task."""
        self._closed = True
        if self._work:
            self._work.unpark_all()
        self._space.unpark_all()
        await self._stopped.wait()

    async def _commit(self, batch: _CommitBatch) -> None:
        started = time.perf_counter()
        while True:
            try:
                if self._commit_in_thread:
                    await trio.to_thread.run_sync(self._apply, batch)
                else:
                    self._apply(batch)
                    await trio.lowlevel.checkpoint()
                break
            except _MapFull:
                try:
                    await self._grow_map()
                except lmdb.Error as exc:
                    # The map cannot grow (address space, file size limit): this batch
                    # fails, typed, and the writer serves the next one.
                    error = StorageError(f"the store is full and could not grow: {exc}")
                    for request in batch.requests:
                        request.error = error
                    break
                self._metrics.writer_map_growths.labels("full").inc()
            except lmdb.Error as exc:
                # The whole transaction failed (for example the disk is full): every
                # request of the batch learns it, none is acknowledged.
                error = StorageError(f"commit failed: {exc}")
                for request in batch.requests:
                    request.error = error
                break
        failed = sum(1 for r in batch.requests if r.error is not None)
        assert 0 <= failed <= len(batch.requests)
        # A batch is acknowledged once: its waiters are woken by this commit only.
        assert not batch.done.is_set()
        self._metrics.writer_commit_duration.observe(time.perf_counter() - started)
        self._metrics.writer_batch_size.observe(len(batch.requests))
        self._metrics.writer_requests.labels("ok").inc(len(batch.requests) - failed)
        if failed:
            self._metrics.writer_requests.labels("failed").inc(failed)
        batch.done.set()

    def _apply(self, batch: _CommitBatch) -> None:
        """Runs in a worker thread: apply every request, commit once (with fsync).

        The batch is first applied flat, in one transaction, which is the common case and
        about twice as fast. If any request raises, that attempt is thrown away and the
        batch is applied again with a nested transaction per request, so the failing
        request's writes are rolled back alone.
        """
        try:
            if not self._apply_flat(batch):
                self._apply_isolated(batch)
        except lmdb.MapFullError as exc:
            raise _MapFull from exc

    def _apply_flat(self, batch: _CommitBatch) -> bool:
        txn = self._env.begin(write=True)
        try:
            for request in batch.requests:
                request.result = request.fn(txn)
        except lmdb.MapFullError:
            txn.abort()
            raise
        except Exception:
            txn.abort()
            return False
        except BaseException:
            txn.abort()
            raise
        for request in batch.requests:
            request.error = None
        txn.commit()
        return True

    def _apply_isolated(self, batch: _CommitBatch) -> None:
        env = self._env
        with env.begin(write=True) as txn:
            for request in batch.requests:
                request.result = None
                request.error = None
                child = env.begin(write=True, parent=txn)
                try:
                    request.result = request.fn(child)
                except lmdb.MapFullError:
                    child.abort()
                    raise
                except lmdb.Error as exc:
                    child.abort()
                    request.error = StorageError(f"write failed: {exc}")
                except Exception as exc:
                    child.abort()
                    request.error = exc
                else:
                    child.commit()

    def _fail_queued(self, error: BaseException) -> None:
        while self._queue:
            batch = self._queue.popleft()
            for request in batch.requests:
                request.error = error
            batch.done.set()
        self._queued_requests = 0
