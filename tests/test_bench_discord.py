"""The Discord benchmark runs end to end in its quick mode: real server processes, the
fake Discord and the load in another process."""

from __future__ import annotations

from bench.discord import QUICK, run


def test_quick_discord_bench_reports_every_figure() -> None:
    """Quick mode serves a burst and paced loads through the HTTP endpoint, then the
    gateway, and reports each figure within its range."""
    figures = run(quick=True)
    assert figures["members"] == QUICK.members
    for transport in ("http", "gateway"):
        # A burst of QUICK.burst actions, some of them blackjack hands and their presses.
        assert figures[f"{transport}_burst_interactions"] >= QUICK.burst
        assert 0 < figures[f"{transport}_acked_within_3s_ratio_burst_1000"] <= 1
        assert figures[f"{transport}_sustained_per_s"] in (0, *QUICK.sustained_rates_per_s)
        assert 0 < figures[f"{transport}_ack_p50_ms"] <= figures[f"{transport}_ack_p99_ms"]
        assert figures[f"{transport}_server_cpu_ms_per_interaction"] > 0
    # The endpoint answers in the HTTP response; REST is used only for deferred ones.
    assert figures["http_deferred"] > 0 or figures["discord_requests_per_interaction"] == 0
    # Over the gateway every acknowledgement is at least one callback.
    assert figures["gateway_discord_requests_per_interaction"] >= 1
