"""``croupier bench api --quick``: a real server loaded from another process answers every
request, and the figures come out as one JSON object."""

from __future__ import annotations

import json
import math

import pytest

from bench import run_bench


def test_quick_api_bench_reports_every_figure_with_no_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """GET and PATCH both run at 100 clients, every answer is a 200, figures are finite."""
    assert run_bench("api", as_json=True, quick=True) == 0
    figures = json.loads(capsys.readouterr().out)

    assert set(figures) == {
        "clients",
        "members",
        *(
            f"{kind}_{name}"
            for kind in ("get", "patch")
            for name in (
                "requests_per_s_100_clients",
                "p50_ms",
                "p99_ms",
                "errors",
                "server_cpu_ms_per_request",
            )
        ),
    }
    assert all(isinstance(v, int | float) and math.isfinite(v) for v in figures.values())
    assert figures["get_errors"] == figures["patch_errors"] == 0
    assert figures["get_requests_per_s_100_clients"] > 0
    assert figures["patch_requests_per_s_100_clients"] > 0
    assert figures["get_p50_ms"] <= figures["get_p99_ms"]
