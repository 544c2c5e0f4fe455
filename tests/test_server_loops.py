"""The server's periodic jobs: on schedule, and a failed run does not end the loop."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from bot.server import _every


async def test_a_periodic_job_runs_on_schedule_and_outlives_a_failure(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    runs: list[float] = []

    async def job() -> None:
        runs.append(trio.current_time())
        if len(runs) == 2:
            raise RuntimeError("this run fails")

    start = trio.current_time()
    with trio.move_on_after(35):
        await _every(10, job, "the job failed")
    assert [round(t - start) for t in runs] == [10, 20, 30]
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == ["the job failed"]
