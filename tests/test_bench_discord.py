"""The Discord benchmark runs end to end in its quick mode: a real server process, the
fake Discord and the signed load in another."""

from __future__ import annotations

from bot.bench_discord import QUICK, run


def test_quick_discord_bench_reports_every_figure() -> None:
    """Quick mode serves a burst and paced loads through the HTTP endpoint and reports
    each figure within its range; nothing is lost at these small sizes."""
    figures = run(quick=True)
    assert figures["members"] == QUICK.members
    # A burst of QUICK.burst actions, some of them blackjack hands followed by a press.
    assert figures["http_burst_interactions"] >= QUICK.burst
    assert 0 < figures["http_acked_within_3s_ratio_burst_1000"] <= 1
    assert figures["http_sustained_per_s"] in (0, *QUICK.sustained_rates_per_s)
    assert 0 < figures["http_ack_p50_ms"] <= figures["http_ack_p99_ms"]
    assert figures["http_server_cpu_ms_per_interaction"] > 0
    # Answers travel in the HTTP responses; REST is used only by deferred ones.
    assert figures["http_deferred"] > 0 or figures["discord_requests_per_interaction"] == 0
