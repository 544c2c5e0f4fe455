"""The timer service: due order, catch-up, retries with backoff, 429s, per-guild permission
backoff reported once, parking after N attempts, and a seek that does not walk the index."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import random
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors import TimerRecord, TimerService, check_store, list_parked
from actors.discord_port import MISSING_PERMISSIONS, Done, Forbidden, Retry
from actors.timer_records import (
    TIMER,
    TimerRetry,
    backoff_seconds,
    delete_timer,
    kind_of,
    put_timer,
    settled,
)
from limits import Limits
from metrics import Metrics
from storage import Store, open_store
from tests.conftest import sample
from tests.support.discord_port import FakeDiscordPort

T0 = 1_800_000_000.0
G1, G2 = 111, 222
UNBAN = "test_unban"


@pytest.fixture
def limits() -> Limits:
    return Limits(
        timer_attempts_max=4,
        timer_retry_seconds_min=10.0,
        timer_retry_seconds_max=80.0,
        timer_guild_backoff_seconds_min=60.0,
        timer_guild_backoff_seconds_max=240.0,
        timer_fires_concurrent_max=8,
    )


def wall() -> float:
    """Wall-clock seconds that move with trio's (autojumping) clock."""
    return T0 + trio.current_time()


@dataclass
class Unbans:
    """A toy Discord kind: a timer per (guild, user) that unbans through the port and
    removes itself once Discord answered for good."""

    store: Store
    port: FakeDiscordPort
    fired: list[tuple[str, float]] = field(default_factory=list)

    async def handle(self, timer: TimerRecord) -> None:
        self.fired.append((timer.target, wall()))
        user = int(timer.target)
        settled(await self.port.unban(timer.guild_id, user, reason="tempban over"))
        await self.store.write(lambda txn: delete_timer(txn, self.store, timer.target, timer.due))


async def add(store: Store, target: str, due: float, guild: int = G1, kind: str = UNBAN) -> None:
    record = TimerRecord(kind, target, due, guild_id=guild)
    await store.write(lambda txn: put_timer(txn, store, target, record))


def pending(store: Store) -> list[TimerRecord]:
    with store.read() as txn:
        return [TIMER.decode(v) for _, v in txn.cursor(db=store.db("timers"))]


@asynccontextmanager
async def running(service: TimerService) -> AsyncIterator[None]:
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        yield
        nursery.cancel_scope.cancel()


async def until(condition: Callable[[], bool], seconds: float = 86_400) -> None:
    with trio.fail_after(seconds):
        while not condition():
            await trio.sleep(1)


def service_and_unbans(store: Store, **kwargs: Any) -> tuple[TimerService, Unbans]:
    service = TimerService(store, wall_clock=wall, rng=random.Random(7), **kwargs)
    unbans = Unbans(store, FakeDiscordPort())
    service.register(UNBAN, unbans.handle, discord=True)
    return service, unbans


async def test_timers_fire_in_due_order_at_their_time(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """Timers written out of order fire in due order, each at (not before) its time."""
    service, unbans = service_and_unbans(store)
    for user, delay in ((3, 300), (1, 100), (2, 200)):
        unbans.port.bans[(G1, user)] = "spam"
        await add(store, str(user), T0 + delay)
    async with running(service):
        await until(lambda: len(unbans.fired) == 3)
    assert [target for target, _ in unbans.fired] == ["1", "2", "3"]
    for (target, at), delay in zip(unbans.fired, (100, 200, 300), strict=True):
        assert T0 + delay <= at < T0 + delay + 1, target
    assert pending(store) == [] and unbans.port.bans == {}
    assert sample(store.metrics, "croupier_timers_fired_total", kind=UNBAN) == 3


async def test_a_timer_added_while_running_fires_after_a_kick(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """A timer due before the one being waited for fires at its own time once kicked."""
    service, unbans = service_and_unbans(store, poll_seconds_max=3_600)
    await add(store, "9", T0 + 3_000)
    async with running(service):
        await trio.sleep(10)
        await add(store, "8", T0 + 50)
        service.kick()
        await until(lambda: len(unbans.fired) == 1)
    assert unbans.fired[0][0] == "8" and unbans.fired[0][1] < T0 + 51


async def test_catch_up_after_downtime_fires_oldest_first_once(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """Timers that fell due while the server was down each fire once at start, oldest
    first (one at a time here, so that the order is the order they were started in)."""
    service, unbans = service_and_unbans(store, fires_concurrent_max=1)
    for user in range(30):
        await add(store, str(user), T0 - 10_000 + user * 7)
    async with running(service):
        await until(lambda: len(unbans.fired) == 30)
        await trio.sleep(600)
    assert [int(target) for target, _ in unbans.fired] == list(range(30))
    # Nobody was banned any more: every unban was a permanent answer, which ends a timer.
    assert len(unbans.port.calls_of("unban")) == 30 and pending(store) == []


async def test_failures_back_off_exponentially_then_park(
    store: Store, metrics: Metrics, autojump_clock: trio.testing.MockClock
) -> None:
    """REST failures are retried after doubling, jittered waits; after attempts_max the
    timer is parked, counted and listed, and the loop goes on with the others."""
    service, unbans = service_and_unbans(store)
    unbans.port.script("unban", *[Retry("HTTP 500")] * 4)
    await add(store, "5", T0)
    async with running(service):
        await until(lambda: service.parked == 1)
    times = [at for _, at in unbans.fired]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(times) == 4
    for gap, base in zip(gaps, (10, 20, 40), strict=True):
        assert base / 2 <= gap <= base + 1, gaps
    [parked] = list_parked(store, "timer")
    assert parked.target == "5" and parked.attempts == 4 and "HTTP 500" in parked.error
    assert pending(store) == []
    assert sample(metrics, "croupier_timers_retried_total", kind=UNBAN) == 3
    assert sample(metrics, "croupier_timers_parked_total", kind=UNBAN) == 1
    assert sample(metrics, "croupier_parked_records_total", kind="timer") == 1
    report = check_store(store)
    [line] = report.parked
    assert f"kind={UNBAN} guild={G1} target=5 attempts=4: HTTP 500" in line
    assert report.figures["parked_timers"] == 1 and line in report.text()


async def test_a_429_waits_retry_after_and_counts_no_failure(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """A rate-limited answer waits at least Discord's retry_after and is never parked,
    however often it comes; then the unban goes through once."""
    service, unbans = service_and_unbans(store)
    unbans.port.bans[(G1, 5)] = "spam"
    unbans.port.script("unban", *[Retry("HTTP 429", 42.0)] * 6)
    await add(store, "5", T0)
    async with running(service):
        await until(lambda: not pending(store))
    times = [at for _, at in unbans.fired]
    assert len(times) == 7 and service.parked == 0
    assert all(42.0 <= b - a <= 42.0 * 1.1 + 1 for a, b in itertools.pairwise(times))
    assert unbans.port.bans == {}


async def test_a_missing_permission_backs_the_guild_off_and_is_reported_once(
    store: Store,
    metrics: Metrics,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A guild where the bot lost Ban Members holds all its unbans: one probe per
    doubling backoff, one log line and one count for the whole outage, no parking; other
    guilds go on; once the permission is back every held unban goes through once."""
    caplog.set_level(logging.INFO, logger="croupier.timers")
    service, unbans = service_and_unbans(store)
    port = unbans.port
    for user in range(5):
        port.bans[(G1, user)] = "spam"
        await add(store, str(user), T0 + user)
    port.bans[(G2, 99)] = "spam"
    await add(store, "99", T0 + 30, guild=G2)
    port.forbid(G1)
    async with running(service):
        await until(lambda: (G2, 99) not in port.bans)
        await trio.sleep(60 + 120 + 240 + 240 - 100)
        attempts = len(port.calls_of("unban"))
        assert service.guilds_backed_off() == {
            G1: f"Discord code {MISSING_PERMISSIONS}: Missing Permissions"
        }
        port.allow(G1)
        await until(lambda: not pending(store), seconds=600)
    # The first firing of each of the 5 in a burst may race the report; after it, one
    # probe per backoff: 60, 120, 240, 240 seconds.
    assert attempts <= 5 + 4 + 1
    assert service.parked == 0 and port.bans == {}
    assert len([c for c in port.calls_of("unban") if isinstance(c.result, Done)]) == 6
    reports = [r for r in caplog.records if "timer_guild_forbidden" in r.getMessage()]
    assert len(reports) == 1
    assert sample(metrics, "croupier_timers_guild_forbidden_total") == 1
    assert sample(metrics, "croupier_timers_guilds_backed_off") == 0
    assert sample(metrics, "croupier_timers_parked_total", kind=UNBAN) == 0


async def test_forbidden_answers_probe_with_doubling_backoff(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """While a guild stays forbidden, only one timer at a time asks Discord, at waits
    doubling from the minimum to the maximum."""
    service, unbans = service_and_unbans(store)
    unbans.port.forbid(G1)
    for user in range(3):
        await add(store, str(user), T0)
    async with running(service):
        await trio.sleep(60 + 120 + 240 + 240 + 240 + 5)
    times = [at for _, at in unbans.fired]
    probes = times[3:]
    gaps = [b - a for a, b in itertools.pairwise(probes)]
    assert len(times) == 3 + 5 and all(at < T0 + 1 for at in times[:3])
    assert [round(g) for g in gaps] == [120, 240, 240, 240]
    assert len(pending(store)) == 3


async def test_forbidden_without_a_guild_is_a_failure(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """A missing permission from a timer that names no guild cannot back a guild off: it
    is a failed attempt, parked in the end like any other."""
    service, unbans = service_and_unbans(store)
    unbans.port.script("unban", *[Forbidden(MISSING_PERMISSIONS, "Missing")] * 4)
    await add(store, "1", T0, guild=0)
    async with running(service):
        await until(lambda: service.parked == 1)
    assert service.guilds_backed_off() == {}


async def test_the_next_due_timer_is_a_seek_not_a_walk(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """With retries waiting below the floor, the loop reads from the floor up: a timer
    waiting for a retry is not read again until its time comes."""
    service, unbans = service_and_unbans(store)
    unbans.port.script("unban", *[Retry("HTTP 500")] * 3)
    await add(store, "1", T0)
    for user in range(2, 50):
        await add(store, str(user), T0 + 10_000 + user)
    reads: list[bytes] = []
    decode = TIMER.decode

    def counting(raw: bytes) -> TimerRecord:
        record = decode(raw)
        reads.append(record.target.encode())
        return record

    TIMER.decode = counting  # type: ignore[method-assign]
    try:
        async with running(service):
            await trio.sleep(200)
    finally:
        TIMER.decode = decode  # type: ignore[method-assign]
    # Four firings of "1" (three failures, then done), and nothing else decoded.
    assert reads.count(b"1") == 4 and set(reads) == {b"1"}, reads


def test_backoff_doubles_within_jitter() -> None:
    """Each wait lies between half and all of min * 2**(n-1), capped at the maximum."""
    rng = random.Random(1)
    for failures in range(1, 12):
        base = min(80.0, 10.0 * 2 ** (failures - 1))
        for _ in range(20):
            assert base / 2 <= backoff_seconds(failures, 10.0, 80.0, rng) <= base


def test_old_timer_records_read_with_guild_zero() -> None:
    """A record written before guild_id existed reads as guild 0; the field round-trips."""
    record = TimerRecord("game", "g1", T0)
    old = TIMER.encode(dataclasses.replace(record))
    assert TIMER.decode(old).guild_id == 0
    assert TIMER.decode(TIMER.encode(TimerRecord("x", "y", T0, guild_id=G1))).guild_id == G1


async def test_gauges_count_pending_by_kind_and_overdue(
    store: Store, metrics: Metrics, autojump_clock: trio.testing.MockClock
) -> None:
    """The gauges count pending timers per registered kind ('unknown' for the rest) and
    those overdue past the grace."""
    service, _ = service_and_unbans(store)
    for user in range(3):
        await add(store, str(user), T0 - 1_000 + user)
    await add(store, "later", T0 + 1_000)
    await add(store, "stray", T0 + 2_000, kind="nobody_handles_this")
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(service.run_gauges, overdue_grace_seconds=300))
        # The counts run in a worker thread, which the autojump clock does not wait for.
        with trio.fail_after(30):
            while sample(metrics, "croupier_timers_overdue") == 0:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert sample(metrics, "croupier_timers_pending", kind=UNBAN) == 4
    assert sample(metrics, "croupier_timers_pending", kind="unknown") == 1
    assert sample(metrics, "croupier_timers_overdue") == 3


async def test_a_timer_written_below_the_floor_without_a_kick_still_fires(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """An owner that forgets to kick delays its timer by at most the poll interval, even
    while a long catch-up keeps the loop busy (woken by every firing that ends)."""
    service = TimerService(store, wall_clock=wall, poll_seconds_max=5.0)
    fired: list[tuple[str, float]] = []

    async def slow(timer: TimerRecord) -> None:
        await trio.sleep(1)
        fired.append((timer.target, wall()))
        await store.write(lambda txn: delete_timer(txn, store, timer.target, timer.due))

    service.register("slow", slow)
    for user in range(200):
        await add(store, f"u{user}", T0 - 1_000 + user, kind="slow")
    async with running(service):
        await trio.sleep(3)
        await add(store, "early", T0 - 5_000, kind="slow")
        await until(lambda: "early" in [target for target, _ in fired])
        catching_up = len(fired)
    [at] = [at for target, at in fired if target == "early"]
    assert at <= T0 + 3 + 5 + 1 + 1 and catching_up < 100


# One timer of the property test: when it falls due (seconds from the start), how many
# times its handler fails before it succeeds, and how many 429s come first.
TimerPlan = tuple[int, int, int]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(-3_000, 3_000), st.integers(0, 6), st.integers(0, 3)),
        min_size=1,
        max_size=12,
    )
)
def test_every_timer_fires_once_when_due_or_is_parked(plans: list[TimerPlan]) -> None:
    """Whatever the due times and failures: no timer fires before it is due, one that
    fails fewer than attempts_max times in a row is done once, one that fails more is
    parked after exactly attempts_max attempts, 429s count nothing, and first firings
    come in due order."""
    with tempfile.TemporaryDirectory() as tmp:
        trio.run(
            partial(check_plans, Path(tmp), plans),
            clock=trio.testing.MockClock(autojump_threshold=0),
        )


async def check_plans(tmp: Path, plans: list[TimerPlan]) -> None:
    limits = Limits(timer_attempts_max=4, timer_retry_seconds_min=1.0)
    async with open_store(tmp / "data", limits=limits, commit_in_thread=False) as store:
        service = TimerService(store, wall_clock=wall, fires_concurrent_max=1)
        calls: dict[str, list[float]] = {str(i): [] for i in range(len(plans))}
        done: list[str] = []
        firsts: list[int] = []

        async def handler(timer: TimerRecord) -> None:
            seen = calls[timer.target]
            if not seen:
                firsts.append(int(timer.target))
            seen.append(wall())
            _, failures, limited = plans[int(timer.target)]
            if len(seen) <= limited:
                raise TimerRetry("HTTP 429", after_seconds=2.0)
            if len(seen) <= limited + failures:
                raise TimerRetry("HTTP 500")
            done.append(timer.target)
            await store.write(lambda txn: delete_timer(txn, store, timer.target, timer.due))

        service.register("plan", handler)
        for i, (due, _, _) in enumerate(plans):
            await add(store, str(i), T0 + due, kind="plan")
        async with running(service):
            await until(lambda: not pending(store), seconds=30_000)
        parked = {p.target: p for p in list_parked(store, "timer")}
    for i, (due, failures, limited) in enumerate(plans):
        seen = calls[str(i)]
        assert seen and seen[0] >= T0 + due, (i, seen)
        if failures < 4:
            assert done.count(str(i)) == 1 and len(seen) == limited + failures + 1
        else:
            assert str(i) not in done and parked[str(i)].attempts == 4
            assert len(seen) == limited + 4
    dues = [plans[i][0] for i in firsts]
    assert dues == sorted(dues), (firsts, plans)


@given(
    st.text(min_size=1, max_size=40),
    st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1), max_size=2),
)
def test_the_kind_is_read_from_any_record(kind: str, extra: dict[str, int]) -> None:
    """The gauge's quick read of a record's kind agrees with decoding it, unknown fields
    and long kinds included."""
    extra = {k: v for k, v in extra.items() if k not in {"kind", "target", "due", "guild_id", "v"}}
    encoded = TIMER.encode(TimerRecord(kind, "t", T0, extra=extra, guild_id=G1))
    assert kind_of(encoded) == TIMER.decode(encoded).kind == kind
    assert kind_of(b"\x93\x01\x02\x03") is None and kind_of(b"\xc1") is None


async def test_a_backed_off_guild_whose_timers_all_went_is_forgotten(
    store: Store, metrics: Metrics, autojump_clock: trio.testing.MockClock
) -> None:
    """When every timer waiting for a forbidden guild is removed by its owner, the guild
    stops counting as backed off once its wait is over."""
    service, unbans = service_and_unbans(store)
    unbans.port.forbid(G1)
    await add(store, "1", T0)
    async with running(service):
        await until(lambda: service.guilds_backed_off() != {})
        assert sample(metrics, "croupier_timers_guilds_backed_off") == 1
        await store.write(lambda txn: delete_timer(txn, store, "1", T0))
        await until(lambda: service.guilds_backed_off() == {}, seconds=120)
    assert sample(metrics, "croupier_timers_guilds_backed_off") == 0
    assert len(unbans.port.calls_of("unban")) == 1


async def test_a_rate_limited_probe_does_not_try_every_waiting_timer(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    """While a forbidden guild's probe is rate limited, the other waiting timers are not
    each tried at once: the next probe waits for the probe's retry_after."""
    service, unbans = service_and_unbans(store)
    port = unbans.port
    port.forbid(G1)
    for user in range(20):
        port.bans[(G1, user)] = "spam"
        await add(store, str(user), T0 + 100)
    async with running(service):
        await until(lambda: service.guilds_backed_off() != {})
        burst = len(port.calls_of("unban"))
        port.allow(G1)
        port.script("unban", Retry("HTTP 429", 300.0))
        await trio.sleep(200)
        assert len(port.calls_of("unban")) == burst + 1
        await until(lambda: not pending(store), seconds=3_600)
    assert port.bans == {} and service.parked == 0
