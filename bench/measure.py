"""How the in-process suites measure: timed closed and open loops, and progress lines."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

Figures = dict[str, float]


def progress(message: str) -> None:
    """A line on stderr, so that ``--json`` output stays one JSON object."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A loopback TCP port that was free a moment ago, for a server process to listen on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Run:
    """What a timed run did: how many jobs were acknowledged and how many were answered
    busy (outcome unknown), in how long, and each one's latency either way."""

    done: int
    busy: int
    seconds: float
    latencies: list[float]

    @property
    def per_s(self) -> float:
        """Acknowledged jobs per second; a busy answer is not throughput."""
        return self.done / self.seconds

    def percentile_ms(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return 1_000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def closed_loop(
    workers: int, seconds: float, job: Callable[[int, int], Awaitable[bool]]
) -> Run:
    """``workers`` tasks each run ``job(worker, sequence)`` back to back until the time is
    up; the run lasts until the last job started in time has finished. A job returns
    whether it was acknowledged."""
    latencies: list[float] = []
    acknowledged = 0
    deadline = trio.current_time() + seconds

    async def worker(index: int) -> None:
        nonlocal acknowledged
        sequence = 0
        while trio.current_time() < deadline:
            started = time.perf_counter()
            # Await first and add after: ``x += await f()`` reads x before the await and
            # would lose the other tasks' additions made meanwhile.
            ok = await job(index, sequence)
            acknowledged += ok
            latencies.append(time.perf_counter() - started)
            sequence += 1

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for index in range(workers):
            nursery.start_soon(worker, index)
    seconds_taken = time.perf_counter() - started
    return Run(acknowledged, len(latencies) - acknowledged, seconds_taken, latencies)


async def open_loop(per_s: int, seconds: float, job: Callable[[int], Awaitable[bool]]) -> Run:
    """Start ``job(i)`` at a fixed pace whatever the replies do; each latency runs from
    when the job was due, so a server that falls behind is charged for the wait."""
    total = int(per_s * seconds)
    latencies: list[float] = []
    acknowledged = 0
    start = trio.current_time()

    async def one(index: int, due: float) -> None:
        nonlocal acknowledged
        ok = await job(index)
        acknowledged += ok
        latencies.append(trio.current_time() - due)

    async with trio.open_nursery() as nursery:
        for index in range(total):
            due = start + index / per_s
            await trio.sleep_until(due)
            nursery.start_soon(one, index, due)
    return Run(acknowledged, total - acknowledged, trio.current_time() - start, latencies)
