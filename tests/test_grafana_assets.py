"""The shipped dashboards and alert rules: well-formed, and about metrics we export."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from itertools import combinations
from pathlib import Path

import pytest

from metrics import new_metrics
from tests.support.grafana_assets import (
    DASHBOARDS,
    GRAFANA,
    GRAFANA_BUILTINS,
    PROMETHEUS_CONFIG,
    RULES,
    RULES_TEST,
    alert_exprs,
    all_panels,
    exported_names,
    load_dashboard,
    metric_names,
    panel_queries,
    variable_queries,
)

EXPECTED_DASHBOARDS = {
    "croupier-economy",
    "croupier-games",
    "croupier-actors-storage",
    "croupier-discord",
}
EXPECTED_ALERTS = {
    "CroupierDown",
    "CroupierNotReady",
    "CroupierIntegrityViolation",
    "CroupierNoRecentBackup",
    "CroupierLmdbMapNearlyFull",
    "CroupierSupervisorRestartStorm",
    "CroupierRecordsParked",
    "CroupierCommandErrorRate",
    "CroupierCommandLatencyHigh",
    "CroupierDiscordDisconnected",
    "CroupierDiscordUnanswered",
    "CroupierAskTimeouts",
    "CroupierTimersOverdue",
    "CroupierTimersParked",
}
# Prometheus adds `up` to every scrape itself; only the rules may use it.
SCRAPE_SERIES = {"up"}
DATASOURCE_UID = "croupier-prometheus"
GRID_COLUMNS = 24


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing under CI; scripts/install-prometheus.sh installs it")
        pytest.skip("promtool is not installed (scripts/install-prometheus.sh installs it)")
    return path


def run_promtool(promtool: str, *args: str) -> str:
    done = subprocess.run(
        [promtool, *args], cwd=RULES.parent, capture_output=True, text=True, timeout=60
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def exported() -> set[str]:
    return exported_names(new_metrics(process_collectors=True).registry)


def test_the_reader_finds_metric_names_in_promql() -> None:
    """The PromQL name reader skips functions, labels, ranges, strings and groupings."""
    expr = (
        'histogram_quantile(0.99, sum by (le, kind) (rate(a_bucket{x="b_c"}[5m])))'
        " / on (job) group_left (kind) b_total offset 1m > 1e3 and bool c:rule"
    )

    assert metric_names(expr) == {"a_bucket", "b_total", "c:rule"}


def test_every_dashboard_is_there_and_valid_json() -> None:
    """One dashboard per subject, each valid JSON with a unique uid and title."""
    dashboards = [load_dashboard(path) for path in DASHBOARDS]

    assert {d["uid"] for d in dashboards} == EXPECTED_DASHBOARDS
    assert len({d["title"] for d in dashboards}) == len(dashboards)
    for path, dashboard in zip(DASHBOARDS, dashboards, strict=True):
        assert path.stem == dashboard["uid"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_panels_have_unique_ids_and_do_not_overlap(path: Path) -> None:
    """Panel ids are unique, every panel fits the 24-column grid, and none overlap."""
    panels = all_panels(load_dashboard(path))
    ids = [panel["id"] for panel in panels]

    assert len(ids) == len(set(ids))
    boxes = [panel["gridPos"] for panel in panels]
    for box in boxes:
        assert box["x"] >= 0 and box["w"] > 0 and box["x"] + box["w"] <= GRID_COLUMNS
    for a, b in combinations(boxes, 2):
        apart_x = a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"]
        apart_y = a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"]
        assert apart_x or apart_y, f"panels overlap at {a} and {b}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_query_and_datasource_is_well_formed(path: Path) -> None:
    """Each panel query has an expr and a unique refId; each uses the datasource variable."""
    dashboard = load_dashboard(path)
    variables = {f"${v['name']}" for v in dashboard["templating"]["list"]}

    for panel in all_panels(dashboard):
        targets = panel.get("targets", [])
        assert targets, f"panel {panel['title']!r} has no query"
        assert len({t["refId"] for t in targets}) == len(targets)
        for target in [panel, *targets]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in targets:
            assert target["expr"].strip()
            used = set(re.findall(r"\$\w+", target["expr"]))
            assert used <= variables | set(GRAFANA_BUILTINS), target["expr"]
    datasource = next(v for v in dashboard["templating"]["list"] if v["name"] == "datasource")
    assert datasource["current"]["value"] == DATASOURCE_UID


def test_dashboards_only_query_metrics_we_export() -> None:
    """Every metric a dashboard query or variable names is one Metrics or process_* exports."""
    names = exported()
    queries = [(q.key, q.expr) for q in panel_queries()]
    for path in DASHBOARDS:
        dashboard = load_dashboard(path)
        queries += [(f"{dashboard['uid']} variable", q) for q in variable_queries(dashboard)]

    assert len(queries) > 40
    unknown = {key: metric_names(expr) - names for key, expr in queries}
    assert {key: missing for key, missing in unknown.items() if missing} == {}
    assert all(metric_names(expr) for _, expr in queries)


def test_the_rules_hold_every_expected_alert_over_exported_metrics() -> None:
    """The rules hold every expected alert, over metrics Metrics exports (or `up`)."""
    exprs = alert_exprs(RULES.read_text(encoding="utf-8"))

    assert set(exprs) == EXPECTED_ALERTS
    names = exported() | SCRAPE_SERIES
    unknown = {alert: metric_names(expr) - names for alert, expr in exprs.items()}
    assert {alert: missing for alert, missing in unknown.items() if missing} == {}
    assert all(metric_names(expr) for expr in exprs.values())


def test_promtool_accepts_the_rules_and_counts_as_many_as_we_read(promtool: str) -> None:
    """promtool checks the rules file, and finds exactly the rules the reader found."""
    output = run_promtool(promtool, "check", "rules", RULES.name)

    found = re.search(r"SUCCESS: (\d+) rules found", output)
    assert found is not None, output
    assert int(found.group(1)) == len(alert_exprs(RULES.read_text(encoding="utf-8")))


def test_promtool_unit_tests_pass_and_cover_each_alert_both_ways(promtool: str) -> None:
    """promtool's rule tests pass, and each alert is tested both firing and quiet."""
    run_promtool(promtool, "test", "rules", RULES_TEST.name)

    firing: set[str] = set()
    quiet: set[str] = set()
    for case in RULES_TEST.read_text(encoding="utf-8").split("- eval_time:")[1:]:
        name = re.search(r"alertname:\s*(\w+)", case)
        assert name is not None
        quiet_case = re.search(r"exp_alerts:\s*\[\]", case) is not None
        (quiet if quiet_case else firing).add(name.group(1))
    assert firing == EXPECTED_ALERTS
    assert quiet == EXPECTED_ALERTS


def test_example_prometheus_config_is_valid(promtool: str) -> None:
    """The operators' example scrape config passes promtool, rule file included."""
    output = run_promtool(promtool, "check", "config", str(PROMETHEUS_CONFIG))

    assert "1 rule files found" in output


def test_provisioning_points_grafana_at_the_dashboards_and_datasource() -> None:
    """The datasource provisioning carries the uid the dashboards default to."""
    datasource = (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    dashboards = (GRAFANA / "provisioning" / "dashboards" / "croupier.yml").read_text()

    assert re.search(rf"^\s*uid:\s*{DATASOURCE_UID}\s*$", datasource, re.MULTILINE)
    assert re.search(r"^\s*type:\s*prometheus\s*$", datasource, re.MULTILINE)
    assert re.search(r"^\s*type:\s*file\s*$", dashboards, re.MULTILINE)
    assert re.search(r"^\s*path:\s*/\S+\s*$", dashboards, re.MULTILINE)


def test_every_return_to_player_query_is_per_game_and_bet_kind() -> None:
    """Observed and theoretical returns are grouped by (kind, bet), the gauge's labels, so a
    dice line compares number bets with 100 % and over/under with 83.3 %, never a blend."""
    metrics = new_metrics()
    for family in (metrics.games_theoretical_rtp, metrics.games_wagered, metrics.games_paid_out):
        assert family._labelnames == ("kind", "bet")
    returns = [
        query
        for query in panel_queries()
        if "theoretical_rtp" in query.expr
        or (
            {"croupier_games_paid_out_coins_total", "croupier_games_wagered_coins_total"}
            <= metric_names(query.expr)
            and "/" in query.expr
        )
    ]
    assert len(returns) >= 3
    for query in returns:
        groupings = re.findall(r"\bby \(([^)]*)\)", query.expr)
        assert groupings and all(g == "kind, bet" for g in groupings), query.key
