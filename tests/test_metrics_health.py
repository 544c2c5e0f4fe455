"""Readiness conditions and the gauges that mirror them."""

from __future__ import annotations

import pytest

from metrics import Metrics, new_metrics
from metrics.health import (
    DISCORD_CONNECTED,
    INTEGRITY,
    Condition,
    Readiness,
    server_conditions,
)


def _gauge(name: str, metrics: Metrics, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_declared_conditions_hold_the_server_back_until_each_reports() -> None:
    """Every declared condition starts pending; the server is ready once all hold."""
    metrics = new_metrics()
    readiness = Readiness(metrics, server_conditions(discord=False))
    names = server_conditions(discord=False)

    snapshot = readiness.snapshot()
    assert not snapshot.ready
    assert [c.name for c in snapshot.conditions] == list(names)
    assert all(not c.ok and c.detail for c in snapshot.conditions)
    assert _gauge("croupier_ready", metrics) == 0.0

    for name in names:
        assert not readiness.ready
        readiness.set(name, True)
    assert readiness.ready
    assert _gauge("croupier_ready", metrics) == 1.0
    assert _gauge("croupier_ready_condition", metrics, condition=INTEGRITY) == 1.0

    readiness.set(INTEGRITY, False, "1 violation")
    assert not readiness.ready
    assert _gauge("croupier_ready", metrics) == 0.0
    assert _gauge("croupier_ready_condition", metrics, condition=INTEGRITY) == 0.0
    assert readiness.snapshot().conditions[-1] == Condition(INTEGRITY, False, "1 violation")


def test_discord_is_a_condition_only_when_configured() -> None:
    """The Discord condition is waited for only when a token is configured."""
    assert DISCORD_CONNECTED not in server_conditions(discord=False)
    assert DISCORD_CONNECTED in server_conditions(discord=True)


def test_nothing_declared_is_not_ready_and_late_conditions_join() -> None:
    """With no condition the server is not ready; a condition set later joins the list."""
    readiness = Readiness(new_metrics())
    assert not readiness.ready

    readiness.set("warmup_done", True)
    assert readiness.ready
    readiness.set("cache_loaded", False, "loading")
    assert [c.name for c in readiness.snapshot().conditions] == ["warmup_done", "cache_loaded"]
    assert not readiness.ready


@pytest.mark.parametrize("name", ["", "Store", "store open", "store-open", "1store"])
def test_condition_names_must_be_label_safe(name: str) -> None:
    """A condition name becomes a label value, so only snake_case names are accepted."""
    readiness = Readiness(new_metrics())
    with pytest.raises(AssertionError):
        readiness.set(name, True)


def test_a_pending_condition_does_not_hold_the_server_back_but_its_failure_does() -> None:
    """Work after ready (the full integrity scan) shows as pending; a failed result lapses."""
    metrics = new_metrics()
    names = server_conditions(discord=False)
    readiness = Readiness(metrics, names)
    for name in names:
        if name != INTEGRITY:
            readiness.set(name, True)
    assert not readiness.ready

    readiness.pending(INTEGRITY, "first scan running")
    assert readiness.ready
    assert _gauge("croupier_ready", metrics) == 1.0
    assert _gauge("croupier_ready_condition", metrics, condition=INTEGRITY) == 0.0
    pending = readiness.snapshot().conditions[-1]
    assert pending == Condition(INTEGRITY, False, "first scan running", pending=True)

    readiness.set(INTEGRITY, False, "money_sums_to_zero=1")
    assert not readiness.ready
    assert not readiness.snapshot().conditions[-1].pending
    readiness.set(INTEGRITY, True, "ok")
    assert readiness.ready
    assert _gauge("croupier_ready_condition", metrics, condition=INTEGRITY) == 1.0
