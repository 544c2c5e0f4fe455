"""The actor runtime: mailboxes, refs, activation, passivation and supervision.

An actor is a trio task that owns its state and handles the messages of one bounded
mailbox, a batch at a time. The ``ActorSystem`` activates an actor on its first message
(loading its state from the store), passivates it when idle, bounds how many are resident,
and supervises each one for one: a crashed actor fails its pending asks at once, is
restarted from durable state, and past its restart intensity is stopped and handed to its
kind's escalation hook. A crash never reaches sibling actors or the server.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import outcome
import trio

from actors.errors import CroupierError
from actors.failures import ActorCrashed, ActorStopped, AskTimeout, RuntimeFailure
from limits import Limits
from metrics import Metrics

log = logging.getLogger("croupier.actors")

K = TypeVar("K", bound=Hashable)


class Actor:
    """Base class of an actor's behaviour. One instance per activation."""

    async def activate(self) -> None:
        """Load state from the store. Called on activation and after every restart."""

    async def handle(self, message: Any) -> Any:
        """Handle one message and return the reply."""
        raise NotImplementedError

    async def handle_batch(self, messages: Sequence[Any]) -> list[outcome.Outcome[Any]]:
        """Handle every message taken from the mailbox together.

        The default handles them one by one. Actors that write override this to stage
        all their changes and make them durable in one commit. A raised exception is a
        crash (all of the batch fails); an ``outcome.Error`` in the list fails only its
        message, which is how typed user errors are answered.
        """
        results: list[outcome.Outcome[Any]] = []
        for message in messages:
            try:
                results.append(outcome.Value(await self.handle(message)))
            except (CroupierError, RuntimeFailure) as exc:
                # A refusal (or an actor this one asked failing) is a reply: without the
                # traceback it does not keep this frame (and the batch) alive in a cycle
                # for the garbage collector.
                results.append(outcome.Error(exc.with_traceback(None)))
        return results


EscalationHook = Callable[[Any, BaseException], Awaitable[None]]


@dataclass(frozen=True)
class ActorKind(Generic[K]):
    """A kind of actor: how to build one for a key, and what to do when it gives up."""

    name: str
    factory: Callable[[K], Actor]
    on_escalate: EscalationHook | None = None


class _KindMetrics:
    """The metric children of one actor kind, resolved once: ``labels()`` is costly."""

    def __init__(self, metrics: Metrics, kind: str) -> None:
        self.resident = metrics.actors_resident.labels(kind)
        self.activations = metrics.actor_activations.labels(kind)
        self.passivations = metrics.actor_passivations.labels(kind)
        self.mailbox = metrics.mailbox_messages.labels(kind)
        self.ask_timeouts = metrics.ask_timeouts.labels(kind)
        self.restarts = metrics.supervisor_restarts.labels(kind)
        self.escalations = metrics.supervisor_escalations.labels(kind)


class _Envelope:
    """A message in a mailbox and the asking task, parked for the reply."""

    __slots__ = ("message", "task")

    def __init__(self, message: Any) -> None:
        self.message = message
        self.task: trio.lowlevel.Task | None = None

    def resolve(self, result: outcome.Outcome[Any]) -> None:
        """Wake the asker with ``result``; nothing if it already gave up."""
        task = self.task
        if task is not None:
            self.task = None
            trio.lowlevel.reschedule(task, result)


class _Cell:
    """One activation of one actor: its mailbox and supervising loop.

    The mailbox is a bounded deque. The actor's task parks on it when it is empty and a
    sender reschedules it directly; an asker parks until its envelope is resolved. This
    is what trio's memory channels and events do, without their general machinery, and
    an ask is the hottest path of the server.
    """

    __slots__ = (
        "busy",
        "closed",
        "idle_since",
        "key",
        "kind",
        "kind_metrics",
        "mailbox",
        "restarts",
        "space",
        "system",
        "waiting",
    )

    def __init__(self, system: ActorSystem, kind: ActorKind[Any], key: Any) -> None:
        self.system = system
        self.kind = kind
        self.key = key
        self.mailbox: deque[_Envelope] = deque()
        # The actor's task while it waits on an empty mailbox.
        self.waiting: trio.lowlevel.Task | None = None
        # Senders waiting for room in a full mailbox; made on first need.
        self.space: trio.lowlevel.ParkingLot | None = None
        self.busy = True
        self.closed = False
        self.idle_since = 0.0
        self.restarts: deque[float] | None = None
        self.kind_metrics = system._kind_metrics[kind.name]

    @property
    def idle(self) -> bool:
        return not self.busy and not self.mailbox

    def offer(self, envelope: _Envelope) -> bool:
        """Queue ``envelope`` if there is room; False if the mailbox is full."""
        if self.closed:
            raise ActorStopped(self.kind.name)
        if len(self.mailbox) >= self.system.limits.mailbox_messages_max:
            return False
        self.mailbox.append(envelope)
        self.system._queued[self.kind.name] += 1
        self._wake()
        return True

    async def put(self, envelope: _Envelope) -> None:
        """Queue ``envelope``, waiting for room while the mailbox is full."""
        while not self.offer(envelope):
            if self.space is None:
                self.space = trio.lowlevel.ParkingLot()
            await self.space.park()

    def _wake(self) -> None:
        """Reschedule the actor's task if it is parked on the empty mailbox."""
        task = self.waiting
        if task is not None:
            self.waiting = None
            trio.lowlevel.reschedule(task)

    def _abort_wait(self, _: Any) -> trio.lowlevel.Abort:
        self.waiting = None
        return trio.lowlevel.Abort.SUCCEEDED

    async def run(self) -> None:
        kind = self.kind.name
        escalated = False
        try:
            actor = await self._start(None)
            escalated = actor is None
            while actor is not None:
                batch = await self._next_batch()
                if batch is None:
                    return
                self.busy = True
                try:
                    results = await actor.handle_batch([e.message for e in batch])
                except Exception as exc:
                    log.exception("actor %s %r crashed", kind, self.key)
                    self._fail_pending(batch, exc)
                    actor = await self._start(exc)
                    escalated = actor is None
                    continue
                assert len(results) == len(batch), (kind, len(results), len(batch))
                for envelope, result in zip(batch, results, strict=True):
                    envelope.resolve(result)
                # An idle actor keeps nothing of its last batch alive: the garbage
                # collector walks every resident actor's objects.
                del batch, results, envelope, result
                self.busy = False
        finally:
            self._close()
            # Cancelled (the system stopped) with messages still queued: no reply will
            # come, so nobody waits for one.
            self._fail_pending([], ActorStopped(kind))
            if not escalated:
                self.kind_metrics.passivations.inc()

    async def _next_batch(self) -> list[_Envelope] | None:
        """Wait for messages; None once the mailbox is closed and empty."""
        self.busy = False
        mailbox = self.mailbox
        if not mailbox:
            if self.closed:
                return None
            self.system._became_idle(self)
            while not mailbox:
                if self.closed:
                    return None
                self.waiting = trio.lowlevel.current_task()
                await trio.lowlevel.wait_task_rescheduled(self._abort_wait)
        else:
            # A busy actor still gives the others a turn between batches.
            await trio.lowlevel.checkpoint()
        count = min(len(mailbox), self.system.limits.actor_batch_messages_max)
        batch = [mailbox.popleft() for _ in range(count)]
        self.system._queued[self.kind.name] -= count
        if self.space is not None and self.space:
            self.space.unpark_all()
        return batch

    async def _start(self, crash: BaseException | None) -> Actor | None:
        """Build and activate the actor; on a crash, count it against the intensity."""
        while True:
            if crash is not None:
                now = trio.current_time()
                window = self.system.limits.restart_window_seconds
                if self.restarts is None:
                    self.restarts = deque()
                while self.restarts and self.restarts[0] < now - window:
                    self.restarts.popleft()
                self.restarts.append(now)
                if len(self.restarts) > self.system.limits.restarts_max:
                    await self._escalate(crash)
                    return None
                self.kind_metrics.restarts.inc()
            try:
                actor = self.kind.factory(self.key)
                await actor.activate()
            except Exception as exc:
                log.exception("actor %s %r failed to activate", self.kind.name, self.key)
                crash = exc
                self._fail_pending([], exc)
                continue
            self.kind_metrics.activations.inc()
            return actor

    async def _escalate(self, crash: BaseException) -> None:
        self.kind_metrics.escalations.inc()
        log.error(
            "actor %s %r stopped after %d restarts in %.0f s",
            self.kind.name,
            self.key,
            len(self.restarts or ()) - 1,
            self.system.limits.restart_window_seconds,
        )
        self._close()
        self._fail_pending([], ActorStopped(self.kind.name))
        if self.kind.on_escalate is not None:
            try:
                await self.kind.on_escalate(self.key, crash)
            except Exception:
                log.exception("escalation hook of %s %r failed", self.kind.name, self.key)

    def _fail_pending(self, batch: list[_Envelope], exc: BaseException) -> None:
        """Fail the batch and every queued ask at once: each asker learns now that the
        outcome of its message is whatever is durable, instead of waiting for its
        deadline."""
        error = exc if isinstance(exc, RuntimeFailure) else ActorCrashed(self.kind.name, exc)
        for envelope in batch:
            envelope.resolve(outcome.Error(error))
        drained = len(self.mailbox)
        while self.mailbox:
            self.mailbox.popleft().resolve(outcome.Error(error))
        self.system._queued[self.kind.name] -= drained
        if self.space is not None:
            self.space.unpark_all()

    def _shut(self) -> None:
        """Take no more messages; the task ends once it has handled the queued ones."""
        if not self.closed:
            self.closed = True
            self._wake()
            if self.space is not None:
                self.space.unpark_all()

    def _close(self) -> None:
        """Shut the mailbox and leave the registry (a new message activates anew)."""
        self._shut()
        self.system._forget(self)


class ActorRef:
    """A handle to an actor by kind and key; cheap to create, valid across activations."""

    __slots__ = ("key", "kind", "system")

    def __init__(self, system: ActorSystem, kind: str, key: Any) -> None:
        self.system = system
        self.kind = kind
        self.key = key

    async def ask(self, message: Any, *, timeout: float | None = None) -> Any:
        return await self.system.ask(self.kind, self.key, message, timeout=timeout)


class ActorSystem:
    """Registry and supervisor of every actor. Run it with ``run`` inside a nursery."""

    def __init__(self, *, limits: Limits, metrics: Metrics) -> None:
        self.limits = limits
        self.metrics = metrics
        self._kinds: dict[str, ActorKind[Any]] = {}
        self._kind_metrics: dict[str, _KindMetrics] = {}
        self._cells: OrderedDict[tuple[str, Any], _Cell] = OrderedDict()
        # Actors waiting on an empty mailbox, oldest first: the eviction candidates.
        self._idle: OrderedDict[tuple[str, Any], _Cell] = OrderedDict()
        self._nursery: trio.Nursery | None = None
        self._slot_freed = trio.lowlevel.ParkingLot()
        self._closing = False
        # Messages queued per kind, a plain count read by the mailbox gauge at scrape
        # time (a gauge updated on every message would take its lock twice per message).
        self._queued: dict[str, int] = {}

    def register(self, kind: ActorKind[Any]) -> None:
        assert kind.name not in self._kinds, kind.name
        self._kinds[kind.name] = kind
        self._kind_metrics[kind.name] = _KindMetrics(self.metrics, kind.name)
        self._queued[kind.name] = 0
        self._kind_metrics[kind.name].mailbox.set_function(lambda: self._queued[kind.name])

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Host the actors' tasks until cancelled or ``close`` lets them drain."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await self._passivate_idle()

    async def _passivate_idle(self) -> None:
        """Passivate actors idle for longer than the limit, oldest first.

        One sweep task instead of a timeout around every actor's wait: the idle list is
        ordered by when each actor went idle, so a sweep only looks at expired entries.
        """
        idle_max = self.limits.actor_idle_seconds_max
        while True:
            await trio.sleep(self.limits.passivation_sweep_seconds)
            expired_before = trio.current_time() - idle_max
            while self._idle:
                key, cell = next(iter(self._idle.items()))
                if cell.idle_since > expired_before:
                    break
                del self._idle[key]
                if cell.idle and not cell.closed:
                    cell._close()

    @property
    def resident(self) -> int:
        return len(self._cells)

    def is_resident(self, kind: str, key: Any) -> bool:
        return (kind, key) in self._cells

    def passivate(self, kind: str, key: Any) -> bool:
        """Passivate one actor now if it is idle; True if it was."""
        cell = self._cells.get((kind, key))
        if cell is None or not cell.idle:
            return False
        cell._close()
        return True

    def ref(self, kind: str, key: Any) -> ActorRef:
        assert kind in self._kinds, kind
        return ActorRef(self, kind, key)

    async def ask(self, kind: str, key: Any, message: Any, *, timeout: float | None = None) -> Any:
        """Send and wait for the reply, at most ``timeout`` seconds in all."""
        timeout = self.limits.ask_seconds_default if timeout is None else timeout
        envelope = _Envelope(message)
        with trio.move_on_after(timeout):
            cell = self._cell_now(kind, key) or await self._cell(kind, key)
            if not cell.offer(envelope):
                await cell.put(envelope)
            envelope.task = trio.lowlevel.current_task()

            def abort(_: Any) -> trio.lowlevel.Abort:
                # Timed out or cancelled: the actor may still handle the message, but
                # nobody is waiting for its reply any more.
                envelope.task = None
                return trio.lowlevel.Abort.SUCCEEDED

            return await trio.lowlevel.wait_task_rescheduled(abort)
        self._kind_metrics[kind].ask_timeouts.inc()
        raise AskTimeout(kind, timeout)

    async def close(self) -> None:
        """Stop taking messages, let every actor finish what it has, and return."""
        self._closing = True
        self._slot_freed.unpark_all()
        for cell in list(self._cells.values()):
            cell._shut()
        while self._cells:
            await self._slot_freed.park()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    def _cell_now(self, kind: str, key: Any) -> _Cell | None:
        """The resident cell, or a new one if a slot is free; None if none can be had."""
        if self._closing:
            return None
        cell = self._cells.get((kind, key))
        if cell is not None:
            self._cells.move_to_end((kind, key))
            self._idle.pop((kind, key), None)
            return cell
        if len(self._cells) >= self.limits.actors_resident_max and not self._evict_one():
            return None
        return self._activate(kind, key)

    async def _cell(self, kind: str, key: Any) -> _Cell:
        while True:
            if self._closing:
                raise ActorStopped(kind)
            cell = self._cell_now(kind, key)
            if cell is not None:
                return cell
            await self._slot_freed.park()

    def _activate(self, kind: str, key: Any) -> _Cell:
        assert self._nursery is not None, "ActorSystem.run is not running"
        cell = _Cell(self, self._kinds[kind], key)
        self._cells[(kind, key)] = cell
        cell.kind_metrics.resident.inc()
        self._nursery.start_soon(cell.run)
        return cell

    def _evict_one(self) -> bool:
        """Passivate the least recently used idle actor; False if none is idle."""
        while self._idle:
            _, cell = self._idle.popitem(last=False)
            if cell.idle and not cell.closed:
                cell._close()
                return True
        return False

    def _became_idle(self, cell: _Cell) -> None:
        cell.idle_since = trio.current_time()
        # Re-inserted at the end, so the idle list stays ordered by idle_since.
        key = (cell.kind.name, cell.key)
        self._idle.pop(key, None)
        self._idle[key] = cell
        # An activation waiting for a slot can now evict this actor.
        if self._slot_freed.statistics().tasks_waiting:
            self._slot_freed.unpark(count=1)

    def _forget(self, cell: _Cell) -> None:
        if self._idle.get((cell.kind.name, cell.key)) is cell:
            del self._idle[(cell.kind.name, cell.key)]
        if self._cells.get((cell.kind.name, cell.key)) is cell:
            del self._cells[(cell.kind.name, cell.key)]
            cell.kind_metrics.resident.dec()
            if self._closing:
                self._slot_freed.unpark_all()
            else:
                self._slot_freed.unpark(count=1)
