"""The games benchmark runs end to end in its quick mode."""

from __future__ import annotations

from bench.games import QUICK, run


def test_quick_games_bench_reports_every_figure() -> None:
    """Quick mode measures both throughputs, a boot that resumes every live game, and a
    real console's first reply over settled history with its background scan."""
    figures = run(quick=True)
    for name in (
        "games_per_s_1000_players",
        "blackjack_rounds_per_s_1000_players",
        "boot_to_ready_s_100k_games",
        "boot_to_first_reply_s_1m_settled_games",
        "boot_to_first_reply_s_empty_store",
        "integrity_background_scan_s_1m_settled_games",
    ):
        assert figures[name] > 0, name
    assert figures["live_games"] == QUICK.live_games
    assert figures["settled_games"] == QUICK.settled_games
    assert figures["boot_recovery_resumed_games"] == QUICK.live_games
    assert figures["boot_recovery_refunded_games"] == 0
