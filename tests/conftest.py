"""Shared fixtures: a fresh metrics registry and a real LMDB store in a temp dir."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from limits import Limits
from metrics import Metrics, new_metrics
from storage import Store, open_store


@pytest.fixture
def metrics() -> Metrics:
    return new_metrics()


@pytest.fixture
def limits() -> Limits:
    return Limits()


@pytest.fixture
async def store(
    tmp_path: Path, metrics: Metrics, limits: Limits, request: pytest.FixtureRequest
) -> AsyncIterator[Store]:
    # Under the autojump clock a task waiting on the writer's thread looks blocked and
    # time would jump under it, so such tests commit on the trio thread instead.
    in_thread = "autojump_clock" not in request.fixturenames
    async with open_store(
        tmp_path / "data", limits=limits, metrics=metrics, commit_in_thread=in_thread
    ) as opened:
        yield opened


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    """The current value of one metric sample (0 when it was never set)."""
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value
