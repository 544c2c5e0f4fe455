"""The timers benchmark runs end to end in its quick mode."""

from __future__ import annotations

from bench.timers import QUICK, run


def test_quick_timers_bench_reports_every_figure() -> None:
    """Quick mode measures firing, boot and adding, on an empty and a loaded index."""
    figures = run(quick=True)
    for label in ("empty", "1m_pending"):
        for name in (
            "timers_fire_per_s",
            "timers_boot_to_first_fire_s",
            "timers_add_us",
            "timers_add_commit_ms",
        ):
            assert figures[f"{name}_{label}"] > 0, (name, label)
    assert figures["pending_timers"] == QUICK.pending
