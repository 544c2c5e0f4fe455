"""``croupier bench discord``: the Discord edge under load, against a fake Discord.

The real server (``croupier run``, transport included, nothing shortcut) runs in one
process on a fresh data directory; the fake Discord and the load (``tests/fake_discord/
load.py``) run in another, so the server is not measured with its own load generator in
the same interpreter. The load is a mix from many members: balance, daily, pay,
coinflip and blackjack with a press of its "stand" button.

HTTP endpoint: deliveries are signed POSTs to ``/interactions``, answered in the HTTP
response; an interaction is acknowledged when that answer arrives (a deferral counts,
and its follow-up must then reach the fake). Figures:

- ``http_acked_within_3s_ratio_burst_1000``: 1,000 interactions sent at once, the share
  acknowledged within Discord's 3 s.
- ``http_sustained_per_s``: the highest rate (of those tried, in order) held for 20 s with
  none lost: every interaction acknowledged within 3 s and every deferral followed up.
- ``http_ack_p50_ms`` / ``http_ack_p99_ms``: acknowledgement latency at 200 a second.
- ``discord_requests_per_interaction``: REST requests the fake received per interaction
  over those runs.

Latencies run from the moment an interaction was due to be sent (open loop), so a late
load generator counts against the figures. The gateway half is measured the same way
once the fake's gateway can push a burst and time each callback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bench.measure import free_port, progress

ROOT = Path(__file__).resolve().parents[1]
READY_SECONDS_MAX = 90.0
STOP_SECONDS_MAX = 60.0
# Between runs the server drains what the previous one left (deferred follow-ups): the
# next run starts once it has been idle for a probe, or after the longest wait.
IDLE_PROBE_SECONDS = 0.5
IDLE_CORE_SHARE_MAX = 0.1
IDLE_WAIT_SECONDS_MAX = 60.0
ANSWER_HISTOGRAM = "croupier_discord_http_answer_duration_seconds"
# Wallets are opened at this rate before anything is measured.
WARM_PER_S = 150


@dataclass(frozen=True)
class Sizes:
    members: int
    burst: int
    # Rates tried in order for the sustained figure; the first one that loses an
    # interaction ends the search.
    sustained_rates_per_s: tuple[int, ...]
    sustained_seconds: float
    latency_rate_per_s: int
    latency_seconds: float


FULL = Sizes(
    # Enough that the rate limit (30 a minute, a burst of 10 per member) never refuses
    # one: 2,000 members at 1,000 a second make 10 interactions each in 20 s.
    members=2_000,
    burst=1_000,
    sustained_rates_per_s=(200, 300, 400, 500, 750, 1_000, 1_500, 2_000),
    sustained_seconds=20.0,
    latency_rate_per_s=200,
    latency_seconds=20.0,
)
QUICK = Sizes(
    members=200,
    burst=100,
    sustained_rates_per_s=(50, 100),
    sustained_seconds=1.0,
    latency_rate_per_s=200,
    latency_seconds=1.0,
)


class BenchError(RuntimeError):
    """The bench could not run (no checkout, a server that did not start)."""


def run(quick: bool) -> dict[str, float]:
    if not (ROOT / "tests" / "fake_discord" / "load.py").is_file():
        raise BenchError(
            "croupier bench discord needs a source checkout: the fake Discord lives in tests/"
        )
    sizes = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="croupier-bench-") as tmp, _LoadProcess() as load:
        figures: dict[str, float] = {"members": sizes.members}
        figures.update(bench_http(Path(tmp), load, sizes))
        figures.update(bench_gateway(Path(tmp), load, sizes))
    # The issue's figure: REST requests per interaction over the HTTP endpoint, where
    # the answer needs none, and over the gateway, where each answer is one callback.
    figures["discord_requests_per_interaction"] = figures["http_discord_requests_per_interaction"]
    return figures


def bench_http(tmp: Path, load: _LoadProcess, sizes: Sizes) -> dict[str, float]:
    port = free_port()
    env = {
        "CROUPIER_INTERACTIONS_ADDR": f"127.0.0.1:{port}",
        "CROUPIER_DISCORD_PUBLIC_KEY": load.public_key,
        "CROUPIER_DISCORD_GATEWAY": "false",
    }
    with _ServerProcess(tmp / "http", load.api_url, env) as server:
        load.ask(op="setup", url=f"http://127.0.0.1:{port}/interactions")
        return _measure("http", server, load, sizes, ops=("burst", "paced"))


def bench_gateway(tmp: Path, load: _LoadProcess, sizes: Sizes) -> dict[str, float]:
    with _ServerProcess(tmp / "gateway", load.api_url, {}) as server:
        load.ask(op="gateway_setup")
        return _measure("gateway", server, load, sizes, ops=("gateway_burst", "gateway_paced"))


def _measure(
    name: str, server: _ServerProcess, load: _LoadProcess, sizes: Sizes, ops: tuple[str, str]
) -> dict[str, float]:
    """Warm the members' wallets, then the burst, the latency run and the search for
    the sustained rate, through one transport."""
    burst_op, paced_op = ops
    progress(f"{name}: server ready (pid {server.pid}); warming {sizes.members} wallets")
    load.ask(
        op=paced_op, rate=WARM_PER_S, seconds=sizes.members / WARM_PER_S, members=sizes.members
    )
    _settle(server, name)
    reports = []
    server_side: dict[str, float] = {}
    buckets = server.answer_buckets() if name == "http" else {}
    burst = load.ask(op=burst_op, count=sizes.burst, members=sizes.members)
    reports.append(burst)
    progress(_line(f"{name}: burst of {sizes.burst}", burst))
    if name == "http":
        after = server.answer_buckets()
        server_side["http_server_answer_p99_ms_burst_le"] = _server_quantile(buckets, after, 0.99)
        buckets = after
    _settle(server, name)
    latency = load.ask(
        op=paced_op,
        rate=sizes.latency_rate_per_s,
        seconds=sizes.latency_seconds,
        members=sizes.members,
    )
    reports.append(latency)
    progress(_line(f"{name}: {sizes.latency_rate_per_s}/s", latency))
    if name == "http":
        after = server.answer_buckets()
        # The server's own view (from the delivery reaching the endpoint's code to the
        # answer handed to hypercorn), as bucket bounds: free of the load generator's
        # own delays, which on a busy machine dominate what the client measures.
        server_side["http_server_answer_p50_ms_le"] = _server_quantile(buckets, after, 0.5)
        server_side["http_server_answer_p99_ms_le"] = _server_quantile(buckets, after, 0.99)
    sustained, cpu_seconds, cpu_interactions = _sustained(
        name, server, load, sizes, paced_op, reports
    )
    interactions = sum(r["interactions"] for r in reports)
    return server_side | {
        f"{name}_acked_within_3s_ratio_burst_1000": burst["acked_within_3s"]
        / burst["interactions"],
        f"{name}_burst_interactions": burst["interactions"],
        f"{name}_burst_ack_p99_ms": burst["ack_p99_ms"],
        f"{name}_sustained_per_s": sustained,
        f"{name}_ack_p50_ms": latency["ack_p50_ms"],
        f"{name}_ack_p99_ms": latency["ack_p99_ms"],
        f"{name}_deferred": sum(r["deferred"] for r in reports),
        # The server's own CPU (all its threads) per interaction over the sustained runs:
        # one core's worth of it bounds what the server can hold.
        f"{name}_server_cpu_ms_per_interaction": cpu_seconds * 1000 / cpu_interactions,
        f"{name}_client_cpu_ms_per_interaction": max(
            r["client_cpu_ms_per_interaction"] for r in reports
        ),
        f"{name}_discord_requests_per_interaction": sum(r["discord_requests"] for r in reports)
        / interactions,
    }


def _sustained(
    name: str,
    server: _ServerProcess,
    load: _LoadProcess,
    sizes: Sizes,
    paced_op: str,
    reports: list[dict[str, Any]],
) -> tuple[int, float, int]:
    """Try the sustained rates in order until one loses an interaction: the highest rate
    held, and the server's CPU seconds over the interactions of the runs. Each run's
    report is added to ``reports``."""
    sustained = 0
    cpu_seconds, cpu_interactions = 0.0, 0
    for rate in sizes.sustained_rates_per_s:
        _settle(server, name)
        cpu_before = server.cpu_seconds()
        report = load.ask(
            op=paced_op, rate=rate, seconds=sizes.sustained_seconds, members=sizes.members
        )
        cpu_seconds += server.cpu_seconds() - cpu_before
        cpu_interactions += report["interactions"]
        reports.append(report)
        progress(_line(f"{name}: {rate}/s for {sizes.sustained_seconds:.0f} s", report))
        # The load generator must itself have kept to the rate for the run to count.
        if report["lost"] or report["sending_seconds"] > sizes.sustained_seconds * 1.05:
            break
        sustained = rate
    return sustained, cpu_seconds, cpu_interactions


def _settle(server: _ServerProcess, name: str) -> None:
    waited = server.wait_idle()
    if waited > 2 * IDLE_PROBE_SECONDS:
        progress(f"{name}: the server was busy for {waited:.1f} s after the run")


def _server_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The upper bound (ms) of the bucket holding quantile ``q`` of the answers counted
    between ``before`` and ``after``; 0 when there were none."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= q * counts[-1]:
            return bound * 1000
    return float("inf")


def _line(what: str, report: dict[str, Any]) -> str:
    return (
        f"{what}: {report['interactions']} interactions in {report['seconds']:.1f} s, "
        f"{report['acked_within_3s']} acked within 3 s, {report['lost']} lost, "
        f"{report['deferred']} deferred, p50 {report['ack_p50_ms']:.1f} ms, "
        f"p99 {report['ack_p99_ms']:.1f} ms, max {report['ack_max_ms']:.1f} ms, "
        f"client lag p99 {report['send_lag_p99_ms']:.1f} ms, client CPU "
        f"{report['client_cpu_ms_per_interaction']:.2f} ms each, errors {report['errors']}"
    )


class _LoadProcess:
    """``python -m tests.fake_discord.load``: one JSON request per line, one answer."""

    def __enter__(self) -> _LoadProcess:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.fake_discord.load"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        hello = self._read()
        self.api_url: str = hello["api_url"]
        self.public_key: str = hello["public_key"]
        return self

    def __exit__(self, *exc_info: object) -> None:
        stdin = self._pipe(self._process.stdin)
        try:
            stdin.write(json.dumps({"op": "quit"}) + "\n")
            stdin.close()
        except BrokenPipeError:
            pass
        try:
            self._process.wait(30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def ask(self, **request: Any) -> dict[str, Any]:
        stdin = self._pipe(self._process.stdin)
        stdin.write(json.dumps(request) + "\n")
        stdin.flush()
        return self._read()

    def _read(self) -> dict[str, Any]:
        line = self._pipe(self._process.stdout).readline()
        if not line:
            raise BenchError(f"the load generator exited ({self._process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    @staticmethod
    def _pipe(pipe: IO[str] | None) -> IO[str]:
        assert pipe is not None
        return pipe


class _ServerProcess:
    """``croupier run`` on ``data_dir`` against the fake, until the block ends."""

    def __init__(self, data_dir: Path, api_url: str, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.metrics_port = free_port()
        self.log = data_dir.with_suffix(".log")
        self.env = {
            **os.environ,
            "CROUPIER_DATA_DIR": str(data_dir),
            "CROUPIER_METRICS_ADDR": f"127.0.0.1:{self.metrics_port}",
            "CROUPIER_DISCORD_TOKEN": "bench-token",
            "CROUPIER_DISCORD_API_URL": api_url,
            "CROUPIER_LOG_LEVEL": "warning",
            # The public HTTP app (API, dashboard) is not measured here; any free port.
            "CROUPIER_HTTP_ADDR": "127.0.0.1:0",
            **env,
        }

    def __enter__(self) -> _ServerProcess:
        with open(self.log, "wb") as output:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "run"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.pid = self._process.pid
        deadline = time.monotonic() + READY_SECONDS_MAX
        while not self._ready():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self._stop()
                raise BenchError(f"the server did not get ready:\n{self._tail()}")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop()

    def wait_idle(self) -> float:
        """Wait (at most ``IDLE_WAIT_SECONDS_MAX``) until the server has finished what
        the last run left, deferred follow-ups included: a half-second in which it used
        under a tenth of a core. The seconds waited."""
        started = time.monotonic()
        while time.monotonic() - started < IDLE_WAIT_SECONDS_MAX:
            before = self.cpu_seconds()
            time.sleep(IDLE_PROBE_SECONDS)
            if self.cpu_seconds() - before < IDLE_PROBE_SECONDS * IDLE_CORE_SHARE_MAX:
                break
        return time.monotonic() - started

    def cpu_seconds(self) -> float:
        """User and system CPU the server process has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def answer_buckets(self) -> dict[float, float]:
        """The server's own histogram of HTTP answer times (every answer kind summed):
        upper bound in seconds -> answers at most that slow, so far."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as answer:
            text = answer.read().decode()
        buckets: dict[float, float] = {}
        for line in text.splitlines():
            if line.startswith(f"{ANSWER_HISTOGRAM}_bucket{{"):
                labels, value = line.rsplit(" ", 1)
                bound = labels.split('le="', 1)[1].split('"', 1)[0]
                key = float("inf") if bound == "+Inf" else float(bound)
                buckets[key] = buckets.get(key, 0.0) + float(value)
        return buckets

    def _ready(self) -> bool:
        url = f"http://127.0.0.1:{self.metrics_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def _stop(self) -> None:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(STOP_SECONDS_MAX)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def _tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]
