"""A real Prometheus scrapes a running server; every dashboard query and alert rule runs.

The server is whatever the ``server_under_test`` fixture starts: today a stand-in that
serves ``bot.http.ops.serve_ops`` under a small load, later ``croupier run``. The fixture
passes it ``CROUPIER_METRICS_ADDR`` (a free port on 127.0.0.1) and ``CROUPIER_DATA_DIR``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.grafana_assets import RULES, alert_exprs, fill_grafana_variables, panel_queries

SUPPORT = Path(__file__).parent / "support"
SCRAPE_SECONDS = 1
# Grafana would derive these from the time picker and the scrape interval; these values
# cover several 1-second scrapes, so rates have points to work with.
GRAFANA_VARIABLES = {
    "$__rate_interval": "15s",
    "$__interval": "5s",
    "$__range": "1m",
    "$instance": ".*",
}
STARTUP_SECONDS_MAX = 30.0
SCRAPED_SECONDS_MAX = 60.0
SCRAPES_MIN = 5
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class ServerUnderTest:
    """How to start the scraped server, and what its load must show."""

    argv: list[str]
    env: dict[str, str]
    # Panel queries (PanelQuery.key) allowed to return no samples under this server's
    # load; every other panel query must return at least one.
    panels_without_data: frozenset[str]
    # Alerts that may be pending or firing while this server runs; all others must not.
    alerts_allowed: frozenset[str]


@pytest.fixture(scope="module")
def server_under_test() -> ServerUnderTest:
    """The real server (``bot.server.serve``) under a small command load.

    The load goes through the command layer without a Discord connection (the Discord
    transport has its own end-to-end tests), and a healthy run refunds no game, so those
    two panels have nothing to show.
    """
    return ServerUnderTest(
        argv=[sys.executable, str(SUPPORT / "loaded_server.py")],
        env={},
        panels_without_data=frozenset(
            {"croupier-discord/Interactions/A", "croupier-games/Refunds/A"}
        ),
        alerts_allowed=frozenset(),
    )


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus is missing under CI; scripts/install-prometheus.sh installs it")
        pytest.skip("prometheus is not installed (scripts/install-prometheus.sh installs it)")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status), bytes(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, bytes(error.read())


def tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def wait_until(
    what: str,
    seconds: float,
    done: Callable[[], bool],
    *watched: tuple[subprocess.Popen[bytes], Path],
) -> None:
    """Poll ``done`` until it holds, failing early if a watched process has exited."""
    deadline = time.monotonic() + seconds
    while not done():
        for process, log in watched:
            if process.poll() is not None:
                pytest.fail(f"{what}: process exited with {process.returncode}\n{tail(log)}")
        if time.monotonic() > deadline:
            logs = "\n".join(tail(log) for _, log in watched)
            pytest.fail(f"{what}: not within {seconds} s\n{logs}")
        time.sleep(POLL_SECONDS)


@contextmanager
def running(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run a process with its output in ``log``, and stop it however the test ends."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def api(base: str, path: str, **params: str) -> Any:
    """The data of a successful Prometheus API answer; anything else fails the test."""
    status, body = fetch(f"{base}{path}?{urllib.parse.urlencode(params)}")
    document = json.loads(body) if body.startswith(b"{") else {}
    assert status == 200 and document.get("status") == "success", (
        f"{path} {params}: HTTP {status}: {body[:500]!r}"
    )
    return document["data"]


def scrape_count(base: str) -> int:
    data = api(base, "/api/v1/query", query='count_over_time(croupier_ready{job="croupier"}[1m])')
    return int(float(data["result"][0]["value"][1])) if data["result"] else 0


def alerting_rules(base: str) -> list[dict[str, Any]]:
    groups = api(base, "/api/v1/rules", type="alert")["groups"]
    return [rule for group in groups for rule in group["rules"]]


@dataclass(frozen=True)
class Scraped:
    """A running server and a Prometheus that has scraped it and evaluated the rules."""

    prometheus: str
    server: str
    expectations: ServerUnderTest


@pytest.fixture(scope="module")
def scraped(
    tmp_path_factory: pytest.TempPathFactory,
    server_under_test: ServerUnderTest,
    prometheus_binary: str,
) -> Iterator[Scraped]:
    work = tmp_path_factory.mktemp("prometheus")
    server_port, prometheus_port = free_port(), free_port()
    server = f"http://127.0.0.1:{server_port}"
    prometheus = f"http://127.0.0.1:{prometheus_port}"
    env = {
        **os.environ,
        **server_under_test.env,
        "CROUPIER_METRICS_ADDR": f"127.0.0.1:{server_port}",
        "CROUPIER_HTTP_ADDR": "127.0.0.1:0",
        "CROUPIER_DATA_DIR": str(work / "data"),
    }
    config = work / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {
                    "scrape_interval": f"{SCRAPE_SECONDS}s",
                    "scrape_timeout": f"{SCRAPE_SECONDS}s",
                    "evaluation_interval": f"{SCRAPE_SECONDS}s",
                },
                "rule_files": [str(RULES)],
                "scrape_configs": [
                    {
                        "job_name": "croupier",
                        "static_configs": [{"targets": [f"127.0.0.1:{server_port}"]}],
                    }
                ],
            }
        )
    )
    prometheus_argv = [
        prometheus_binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={work / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prometheus_port}",
        "--log.level=warn",
    ]
    server_log, prometheus_log = work / "server.log", work / "prometheus.log"

    with running(server_under_test.argv, env, server_log) as server_process:
        watched_server = (server_process, server_log)
        wait_until(
            "server answers /healthz",
            STARTUP_SECONDS_MAX,
            lambda: _answers(f"{server}/healthz"),
            watched_server,
        )
        with running(prometheus_argv, dict(os.environ), prometheus_log) as prometheus_process:
            watched = (watched_server, (prometheus_process, prometheus_log))
            wait_until(
                "prometheus is ready",
                STARTUP_SECONDS_MAX,
                lambda: _answers(f"{prometheus}/-/ready"),
                *watched,
            )
            wait_until(
                f"{SCRAPES_MIN} scrapes and a first evaluation of every rule",
                SCRAPED_SECONDS_MAX,
                lambda: (
                    scrape_count(prometheus) >= SCRAPES_MIN
                    and all(r["health"] != "unknown" for r in alerting_rules(prometheus))
                ),
                *watched,
            )
            yield Scraped(prometheus, server, server_under_test)


def _answers(url: str) -> bool:
    try:
        return fetch(url)[0] == 200
    except OSError:
        return False


def test_prometheus_scrapes_the_server_as_a_healthy_target(scraped: Scraped) -> None:
    """The one target is up, and Prometheus sees the server ready as /readyz says."""
    targets = api(scraped.prometheus, "/api/v1/targets", state="active")["activeTargets"]
    ready = api(scraped.prometheus, "/api/v1/query", query='croupier_ready{job="croupier"}')

    assert [(t["labels"]["job"], t["health"], t["lastError"]) for t in targets] == [
        ("croupier", "up", "")
    ]
    assert [sample["value"][1] for sample in ready["result"]] == ["1"]
    assert fetch(f"{scraped.server}/readyz")[0] == 200


def test_every_dashboard_query_evaluates_and_shows_data(scraped: Scraped) -> None:
    """Each panel query runs without error, and returns samples unless listed as empty."""
    queries = panel_queries()
    keys = {query.key for query in queries}
    assert scraped.expectations.panels_without_data <= keys, "an exception names no panel"

    empty = []
    for query in queries:
        expr = fill_grafana_variables(query.expr, GRAFANA_VARIABLES)
        if not api(scraped.prometheus, "/api/v1/query", query=expr)["result"]:
            empty.append(query.key)

    missing = sorted(set(empty) - scraped.expectations.panels_without_data)
    assert missing == [], "\n".join(missing)


def test_every_alert_rule_evaluates_and_a_healthy_server_raises_none(scraped: Scraped) -> None:
    """Prometheus loaded every rule, evaluates each without error, and none is active."""
    rules = alerting_rules(scraped.prometheus)
    in_file = alert_exprs(RULES.read_text(encoding="utf-8"))

    assert sorted(rule["name"] for rule in rules) == sorted(in_file)
    for rule in rules:
        assert (rule["name"], rule["health"], rule.get("lastError", "")) == (rule["name"], "ok", "")
        api(scraped.prometheus, "/api/v1/query", query=rule["query"])
    active = {rule["name"] for rule in rules if rule["state"] != "inactive"}
    assert active <= scraped.expectations.alerts_allowed
