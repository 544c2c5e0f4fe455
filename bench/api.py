"""``croupier bench api``: the HTTP API of a real ``croupier run`` under 100 clients.

The server is a real ``croupier run`` process on a fresh store (console transport with
its input closed, so it only serves), with one write token made before it starts and the
per-token rate limit lifted so the figures show the server, not the limiter. The load
comes from a second process (``python -m bench.api load ...``), so client and server
do not share one interpreter's core: 100 keep-alive HTTP/1.1 connections, each sending
its next request as soon as the previous answer is complete.

``get_*``: ``GET /api/v1/guilds/1/users/{user}`` (balance and rank) over 1,000 members.
``patch_*``: ``PATCH`` of the same path adding one coin, each with a new
``Idempotency-Key``, so every request is a durable change (a wallet commit, an answer
stored under its key, an audit entry). ``*_p50_ms`` / ``*_p99_ms`` are per-request
latencies seen by the clients; ``*_errors`` counts answers that were not 200.
``*_server_cpu_ms_per_request`` is the server process's CPU time (user and system, from
/proc) over the run divided by the requests answered: on a machine shared with other
work the throughput says how much CPU the server got, this says what a request costs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import trio

from bench.measure import free_port

GUILD = 1
MEMBERS = 1_000
CLIENTS = 100
READY_SECONDS_MAX = 60.0
_CROUPIER = str(Path(sys.executable).with_name("croupier"))


def run(quick: bool) -> dict[str, Any]:
    """Start a server, load it from another process, return the figures."""
    seconds = 1.5 if quick else 10.0
    with tempfile.TemporaryDirectory(prefix="croupier-bench-api-") as work:
        data = Path(work) / "data"
        secret = trio.run(_make_token, data)
        http_port, metrics_port = free_port(), free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CROUPIER_")},
            "CROUPIER_DATA_DIR": str(data),
            "CROUPIER_HTTP_ADDR": f"127.0.0.1:{http_port}",
            "CROUPIER_METRICS_ADDR": f"127.0.0.1:{metrics_port}",
            "CROUPIER_API_RATELIMIT_REQUESTS_PER_MINUTE": "6000000",
            "CROUPIER_API_RATELIMIT_BURST": "100000",
            "CROUPIER_LOG_LEVEL": "warning",
        }
        log = Path(work) / "server.log"
        with open(log, "wb") as output:
            server = subprocess.Popen(
                [_CROUPIER, "run"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_ready(metrics_port, server, log)
            figures: dict[str, Any] = {"clients": CLIENTS, "members": MEMBERS}
            for kind in ("get", "patch"):
                cpu_before = _cpu_seconds(server.pid)
                got = _load(http_port, secret, kind, seconds)
                served = got["per_s"] * got["seconds"]
                cpu_ms = 1000 * (_cpu_seconds(server.pid) - cpu_before) / max(1.0, served)
                figures[f"{kind}_server_cpu_ms_per_request"] = round(cpu_ms, 3)
                figures[f"{kind}_requests_per_s_{CLIENTS}_clients"] = got["per_s"]
                figures[f"{kind}_p50_ms"] = got["p50_ms"]
                figures[f"{kind}_p99_ms"] = got["p99_ms"]
                figures[f"{kind}_errors"] = got["errors"]
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    return figures


async def _make_token(data: Path) -> str:
    from actors import ApiTokens
    from storage import open_store

    async with open_store(data) as store:
        created = await ApiTokens(store, time.time).create(
            GUILD, name="bench", scope="write", created_by=1, key="bench"
        )
    return created.secret


def _cpu_seconds(pid: int) -> float:
    """CPU time (user and system) the process ``pid`` has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _wait_ready(port: int, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS_MAX
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server was not ready in {READY_SECONDS_MAX} s")


def _load(port: int, secret: str, kind: str, seconds: float) -> dict[str, Any]:
    """Run the load generator in its own process and read its JSON figures."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.api",
            "load",
            "--port",
            str(port),
            "--token",
            secret,
            "--kind",
            kind,
            "--seconds",
            str(seconds),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=True,
    )
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


# --- the load generator (its own process) -------------------------------------------


def _request(kind: str, secret: str, sequence: int) -> bytes:
    user = 1 + sequence % MEMBERS
    path = f"/api/v1/guilds/{GUILD}/users/{user}"
    head = f"Host: bench\r\nAuthorization: Bearer {secret}\r\n"
    if kind == "get":
        return f"GET {path} HTTP/1.1\r\n{head}\r\n".encode()
    body = b'{"amount":1,"reason":"bench"}'
    return (
        f"PATCH {path} HTTP/1.1\r\n{head}Idempotency-Key: bench-{sequence}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _client(
    port: int,
    secret: str,
    kind: str,
    start: int,
    stop_at: float,
    latencies: list[float],
    statuses: dict[int, int],
) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    buffer = b""
    sequence = start
    async with stream:
        while time.perf_counter() < stop_at:
            request = _request(kind, secret, sequence)
            sequence += CLIENTS
            sent = time.perf_counter()
            await stream.send_all(request)
            while b"\r\n\r\n" not in buffer:
                chunk = await stream.receive_some(65_536)
                if not chunk:
                    return
                buffer += chunk
            head, _, rest = buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(rest) < length:
                chunk = await stream.receive_some(65_536)
                if not chunk:
                    return
                rest += chunk
            buffer = rest[length:]
            latencies.append(time.perf_counter() - sent)
            status = int(head[9:12])
            statuses[status] = statuses.get(status, 0) + 1


async def _generate(port: int, secret: str, kind: str, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    started = time.perf_counter()
    stop_at = started + seconds
    async with trio.open_nursery() as nursery:
        for index in range(CLIENTS):
            nursery.start_soon(_client, port, secret, kind, index, stop_at, latencies, statuses)
    elapsed = time.perf_counter() - started
    latencies.sort()

    def quantile(q: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2)

    return {
        "seconds": elapsed,
        "per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": quantile(0.50) if latencies else 0.0,
        "p99_ms": quantile(0.99) if latencies else 0.0,
        "errors": sum(count for status, count in statuses.items() if status != 200),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def _main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.api")
    parser.add_argument("mode", choices=["load"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--kind", choices=["get", "patch"], required=True)
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()
    figures = trio.run(_generate, args.port, args.token, args.kind, args.seconds)
    print(json.dumps(figures))


if __name__ == "__main__":
    _main()
