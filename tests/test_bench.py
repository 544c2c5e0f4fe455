"""``croupier bench``: each suite's quick run prints one JSON object with its figures."""

from __future__ import annotations

import json
import math
import sys
import types

import pytest

from bench import run_bench

STORAGE_FIGURES = {
    f"writes_per_s_{how}_{writers}"
    for how in ("group_commit", "per_write_commit")
    for writers in (1, 100, 1_000)
}
ECONOMY_FIGURES = {
    "mutations_per_s_1000_users",
    "p50_ms_1000_users",
    "p99_ms_1000_users",
    "p99_ms_at_5000_per_s",
    "leaderboard_page_ms_1m_wallets",
    "payment_writes_floor_mutations_per_s",
}


def printed_figures(capsys: pytest.CaptureFixture[str]) -> dict[str, float]:
    figures = json.loads(capsys.readouterr().out)
    assert isinstance(figures, dict)
    assert all(isinstance(v, int | float) and math.isfinite(v) for v in figures.values())
    return figures


@pytest.mark.parametrize(
    ("suite", "wanted"), [("storage", STORAGE_FIGURES), ("economy", ECONOMY_FIGURES)]
)
def test_quick_bench_prints_its_figures_as_json(
    capsys: pytest.CaptureFixture[str], suite: str, wanted: set[str]
) -> None:
    """A quick run of the suite prints one JSON object holding every required figure."""
    assert run_bench(suite, as_json=True, quick=True) == 0
    assert wanted <= printed_figures(capsys).keys()


def test_games_bench_is_the_games_modules(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The games suite prints exactly what the games benchmark returns."""
    games = types.ModuleType("bench.games")
    games.run = lambda quick: {"games_quick": float(quick)}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bench.games", games)
    assert run_bench("games", as_json=True, quick=True) == 0
    assert printed_figures(capsys) == {"games_quick": 1.0}
