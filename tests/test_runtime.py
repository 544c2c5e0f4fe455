"""Actor runtime: ordering, deadlines, crashes, passivation, resident bound, supervision."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing

from actors import Actor, ActorCrashed, ActorKind, ActorStopped, ActorSystem, AskTimeout
from actors.errors import CroupierError
from limits import Limits
from metrics import Metrics
from storage import Store
from tests.conftest import sample


class Nope(CroupierError):
    code = "nope"


class Counter(Actor):
    """Keeps a list of messages; state is durable in the 'history' sub-database."""

    def __init__(self, store: Store, key: int, log: list[tuple[int, Any]]) -> None:
        self.store = store
        self.key = key
        self.log = log
        self.seen: list[Any] = []

    async def activate(self) -> None:
        with self.store.read() as txn:
            raw = txn.get(b"c%d" % self.key, db=self.store.db("history"))
        self.seen = [] if raw is None else raw.decode().split(",")[1:]

    async def handle(self, message: Any) -> Any:
        self.log.append((self.key, message))
        if message == "crash":
            raise RuntimeError("asked to crash")
        if message == "nope":
            raise Nope("no")
        if isinstance(message, tuple) and message[0] == "crash_after":
            await trio.sleep(message[1])
            raise RuntimeError("asked to crash later")
        if isinstance(message, tuple) and message[0] == "sleep":
            await trio.sleep(message[1])
            return "slept"
        self.seen.append(str(message))
        value = ("," + ",".join(self.seen)).encode()
        db = self.store.db("history")
        await self.store.write(lambda txn: txn.put(b"c%d" % self.key, value, db=db))
        return list(self.seen)


async def occupy(
    actors: ActorSystem, nursery: trio.Nursery, key: int, *, seconds: float, queued: int
) -> None:
    """Keep counter ``key`` busy for ``seconds`` with asks 0..queued-1 waiting behind,
    queued in that order."""
    nursery.start_soon(actors.ask, "counter", key, ("sleep", seconds))
    await trio.testing.wait_all_tasks_blocked()
    for i in range(queued):
        nursery.start_soon(actors.ask, "counter", key, i)
        await trio.testing.wait_all_tasks_blocked()


@pytest.fixture
async def system(
    store: Store, metrics: Metrics, limits: Limits, nursery: trio.Nursery
) -> AsyncIterator[tuple[ActorSystem, list[tuple[int, Any]], list[Any]]]:
    log: list[tuple[int, Any]] = []
    escalated: list[Any] = []

    async def on_escalate(key: Any, crash: BaseException) -> None:
        escalated.append((key, type(crash).__name__))

    actors = ActorSystem(limits=limits, metrics=metrics)
    actors.register(ActorKind("counter", lambda key: Counter(store, key, log), on_escalate))
    await nursery.start(actors.run)
    yield actors, log, escalated
    await actors.close()


async def test_messages_keep_per_actor_order(
    system: Any, autojump_clock: trio.testing.MockClock
) -> None:
    """Messages to one actor are handled in the order they were sent."""
    actors, log, _ = system
    async with trio.open_nursery() as nursery:
        await occupy(actors, nursery, 1, seconds=1, queued=10)
        assert await actors.ask("counter", 1, "last") == [*map(str, range(10)), "last"]
    assert [m for k, m in log if k == 1] == [("sleep", 1), *range(10), "last"]


async def test_typed_errors_answer_without_crashing(system: Any, metrics: Metrics) -> None:
    """A typed user error fails only its own ask; the actor keeps its state."""
    actors, _, _ = system
    await actors.ask("counter", 2, "a")
    with pytest.raises(Nope):
        await actors.ask("counter", 2, "nope")
    assert await actors.ask("counter", 2, "b") == ["a", "b"]
    assert sample(metrics, "croupier_supervisor_restarts_total", kind="counter") == 0


@pytest.mark.parametrize("limits", [Limits(ask_seconds_default=5.0)])
async def test_ask_deadline_raises_typed_timeout(
    system: Any, metrics: Metrics, autojump_clock: trio.testing.MockClock
) -> None:
    """An ask past its deadline raises AskTimeout and is counted."""
    actors, _, _ = system
    start = trio.current_time()
    with pytest.raises(AskTimeout):
        await actors.ask("counter", 3, ("sleep", 60))
    assert trio.current_time() - start == pytest.approx(5.0)
    assert sample(metrics, "croupier_actor_ask_timeouts_total", kind="counter") == 1


async def test_crash_fails_every_pending_ask_at_once(
    system: Any, metrics: Metrics, autojump_clock: trio.testing.MockClock
) -> None:
    """A crash fails the in-flight ask and the queued asks immediately, then restarts."""
    actors, _, _ = system
    await actors.ask("counter", 4, "before")
    failures: list[type[BaseException]] = []

    async def ask(message: Any) -> None:
        try:
            await actors.ask("counter", 4, message, timeout=1000)
        except ActorCrashed as exc:
            failures.append(type(exc.cause))

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask, ("crash_after", 5))
        await trio.testing.wait_all_tasks_blocked()
        for i in range(3):
            nursery.start_soon(ask, f"queued{i}")
    assert trio.current_time() - start == pytest.approx(5), "no waiting for the deadline"
    assert len(failures) == 4
    assert await actors.ask("counter", 4, "after") == ["before", "after"]
    assert sample(metrics, "croupier_supervisor_restarts_total", kind="counter") == 1


@pytest.mark.parametrize("limits", [Limits(actor_idle_seconds_max=30.0)])
async def test_passivation_and_reactivation_keep_state(
    system: Any, metrics: Metrics, autojump_clock: trio.testing.MockClock
) -> None:
    """An idle actor passivates after its idle time and comes back with its state."""
    actors, _, _ = system
    await actors.ask("counter", 5, "x")
    assert actors.is_resident("counter", 5)
    await trio.sleep(31)
    assert not actors.is_resident("counter", 5)
    assert sample(metrics, "croupier_actor_passivations_total", kind="counter") == 1
    assert await actors.ask("counter", 5, "y") == ["x", "y"]
    assert sample(metrics, "croupier_actor_activations_total", kind="counter") == 2


@pytest.mark.parametrize("limits", [Limits(actors_resident_max=100)])
async def test_resident_bound_holds_under_100k_keys(system: Any, metrics: Metrics) -> None:
    """100,000 distinct keys never make more than the bound resident at once."""
    actors, _, _ = system
    peak = 0

    async def touch(key: int) -> None:
        nonlocal peak
        await actors.ask("counter", key, ("sleep", 0))
        peak = max(peak, actors.resident)

    for start in range(0, 100_000, 1000):
        async with trio.open_nursery() as nursery:
            for key in range(start, start + 1000):
                nursery.start_soon(touch, key)
    assert peak <= 100
    assert actors.resident <= 100
    assert sample(metrics, "croupier_actor_activations_total", kind="counter") == 100_000
    assert sample(metrics, "croupier_actors_resident", kind="counter") == actors.resident


@pytest.mark.parametrize("limits", [Limits(restarts_max=3, restart_window_seconds=60.0)])
async def test_restart_intensity_stops_a_crash_loop(
    system: Any, metrics: Metrics, autojump_clock: trio.testing.MockClock
) -> None:
    """Past N restarts in T seconds the actor is stopped and its escalation hook runs."""
    actors, _, escalated = system
    for _ in range(4):
        with pytest.raises(ActorCrashed):
            await actors.ask("counter", 6, "crash")
    assert escalated == [(6, "RuntimeError")]
    assert not actors.is_resident("counter", 6)
    assert sample(metrics, "croupier_supervisor_restarts_total", kind="counter") == 3
    assert sample(metrics, "croupier_supervisor_escalations_total", kind="counter") == 1
    assert await actors.ask("counter", 7, "sibling") == ["sibling"]


@pytest.mark.parametrize("limits", [Limits(restarts_max=3, restart_window_seconds=60.0)])
async def test_crashes_spread_over_time_do_not_escalate(
    system: Any, autojump_clock: trio.testing.MockClock
) -> None:
    """Crashes further apart than the window never reach the intensity limit."""
    actors, _, escalated = system
    for _ in range(10):
        with pytest.raises(ActorCrashed):
            await actors.ask("counter", 8, "crash")
        await trio.sleep(30)
    assert escalated == []


async def test_a_crash_never_reaches_siblings(system: Any) -> None:
    """Siblings keep answering while another actor crashes repeatedly."""
    actors, _, _ = system

    async def crash_loop() -> None:
        for _ in range(3):
            with pytest.raises(ActorCrashed):
                await actors.ask("counter", 9, "crash")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(crash_loop)
        for i in range(20):
            assert await actors.ask("counter", 10, i) == [str(j) for j in range(i + 1)]


async def test_closed_system_refuses_new_messages(system: Any) -> None:
    """After close, asks fail at once with ActorStopped."""
    actors, _, _ = system
    await actors.ask("counter", 12, "x")
    await actors.close()
    with pytest.raises(ActorStopped):
        await actors.ask("counter", 12, "y")
    assert actors.resident == 0


@pytest.mark.parametrize("limits", [Limits(mailbox_messages_max=2)])
async def test_ask_to_a_full_mailbox_waits_for_room(
    system: Any, autojump_clock: trio.testing.MockClock
) -> None:
    """An ask waits while the mailbox is full, is queued once there is room, and gets
    its reply; one that finds no room before its deadline times out without queuing."""
    actors, log, _ = system
    replies: list[Any] = []

    async def ask(message: Any, timeout: float = 100) -> None:
        try:
            replies.append(await actors.ask("counter", 13, message, timeout=timeout))
        except AskTimeout:
            replies.append("timeout")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask, ("sleep", 10))
        await trio.testing.wait_all_tasks_blocked()
        for message in ("a", "b"):
            nursery.start_soon(ask, message)
            await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(ask, "never queued", 1)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(ask, "c")
    assert replies[0] == "timeout"
    # Replies resolved by one batch wake their askers in no particular order.
    assert sorted(map(str, replies[1:])) == sorted(
        map(str, ["slept", ["a"], ["a", "b"], ["a", "b", "c"]])
    )
    assert "never queued" not in [m for _, m in log]


async def test_close_lets_actors_finish_queued_messages(system: Any) -> None:
    """close() stops taking messages but every message already queued is handled."""
    actors, log, _ = system
    async with trio.open_nursery() as nursery:
        await occupy(actors, nursery, 14, seconds=0.05, queued=3)
        await actors.close()
    assert [m for k, m in log if k == 14] == [("sleep", 0.05), 0, 1, 2]
    assert actors.resident == 0
