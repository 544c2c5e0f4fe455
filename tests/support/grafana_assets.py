"""Read the shipped Grafana dashboards and Prometheus rules, for the asset tests.

The rules are YAML and the test environment has no YAML library, so the alert names and
expressions are read with a small reader that knows the layout of our own rules file;
the asset test checks its count against promtool's, so a layout it misreads fails loudly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
RULES = GRAFANA / "alerts" / "croupier-rules.yml"
RULES_TEST = GRAFANA / "alerts" / "croupier-rules.test.yml"
PROMETHEUS_CONFIG = GRAFANA / "prometheus.yml"

# Variables Grafana fills in itself; every other $name must be a dashboard variable.
GRAFANA_BUILTINS = ("$__rate_interval", "$__interval", "$__range")

# Words of PromQL that look like metric names but are not.
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"})
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_WRAPPER = re.compile(r"(?:label_values\((.*),\s*\w+\)|query_result\((.*)\))")
_IDENTIFIER = re.compile(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*")


@dataclass(frozen=True)
class PanelQuery:
    """One query of one panel of one dashboard."""

    dashboard: str
    panel: str
    ref: str
    expr: str

    @property
    def key(self) -> str:
        return f"{self.dashboard}/{self.panel}/{self.ref}"


def load_dashboard(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those folded inside row panels."""
    panels: list[dict[str, Any]] = []
    for panel in dashboard.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def panel_queries() -> list[PanelQuery]:
    """Every PromQL query of every panel of every shipped dashboard."""
    queries = []
    for path in DASHBOARDS:
        dashboard = load_dashboard(path)
        for panel in all_panels(dashboard):
            for target in panel.get("targets", []):
                queries.append(
                    PanelQuery(dashboard["uid"], panel["title"], target["refId"], target["expr"])
                )
    return queries


def variable_queries(dashboard: dict[str, Any]) -> list[str]:
    """The PromQL inside the dashboard's query variables.

    ``label_values(selector, label)`` and ``query_result(query)`` are Grafana's wrappers,
    not PromQL; the selector or query inside them is what reaches Prometheus.
    """
    queries = []
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            wrapped = _GRAFANA_WRAPPER.fullmatch(text.strip())
            queries.append((wrapped.group(1) or wrapped.group(2)).strip() if wrapped else text)
    return queries


def alert_exprs(rules_text: str) -> dict[str, str]:
    """Alert name to expression, from a rules file laid out like ours."""
    exprs: dict[str, str] = {}
    lines = rules_text.splitlines()
    name = ""
    for index, line in enumerate(lines):
        alert = re.match(r"\s*- alert:\s*(\S+)\s*$", line)
        if alert:
            name = alert.group(1)
            continue
        expr = re.match(r"(\s*)expr:\s*(.*)$", line)
        if not expr:
            continue
        indent, value = len(expr.group(1)), expr.group(2).strip()
        if value in ("|", ">", "|-", ">-"):
            block = []
            for following in lines[index + 1 :]:
                if following.strip() and len(following) - len(following.lstrip()) <= indent:
                    break
                block.append(following.strip())
            value = " ".join(part for part in block if part)
        elif value[:1] in "'\"":
            value = value[1:-1]
        assert name and name not in exprs, f"expr without its own alert near line {index + 1}"
        exprs[name] = value
    return exprs


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        if text[match.end() :].lstrip().startswith("("):
            continue
        if match.group().lower() not in _KEYWORDS:
            names.add(match.group())
    return names


def exported_names(registry: CollectorRegistry) -> set[str]:
    """Every series name the registry can export, whether or not it has samples yet."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
    }
    names = set()
    for family in registry.collect():
        for suffix in suffixes.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def fill_grafana_variables(expr: str, values: dict[str, str]) -> str:
    """The expression with Grafana's $variables replaced, longest names first."""
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(name, values[name])
    assert "$" not in expr, f"unfilled variable in {expr}"
    return expr
