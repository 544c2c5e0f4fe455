"""The ops routes (/metrics, /healthz, /readyz) on the one HTTP stack, served for real on
127.0.0.1 and spoken to over TCP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import pytest
import trio
import trio.testing
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from bot.http.ops import OPS_LIMITS, serve_ops
from limits import HttpLimits
from metrics import Metrics, new_metrics
from metrics.health import INTEGRITY, Readiness, server_conditions

# Every exchange is bounded so that a server bug fails a test instead of hanging it.
_EXCHANGE_SECONDS_MAX = 5.0


@dataclass(frozen=True)
class Endpoint:
    port: int
    metrics: Metrics
    readiness: Readiness


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


async def start_endpoint(nursery: trio.Nursery, limits: HttpLimits | None = None) -> Endpoint:
    metrics = new_metrics()
    readiness = Readiness(metrics, server_conditions(discord=False))
    serve = partial(serve_ops, limits=limits) if limits else serve_ops
    port = await nursery.start(serve, "127.0.0.1", 0, metrics, readiness)
    return Endpoint(port, metrics, readiness)


@pytest.fixture
async def endpoint(nursery: trio.Nursery) -> Endpoint:
    return await start_endpoint(nursery)


async def exchange(port: int, raw: bytes) -> Reply:
    """Send ``raw`` bytes and end the sending side, read until the server closes."""
    with trio.fail_after(_EXCHANGE_SECONDS_MAX):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(raw)
            await stream.send_eof()
            received = bytearray()
            while chunk := await stream.receive_some(65_536):
                received += chunk
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.lower()] = value.strip()
    return Reply(int(status_line.split(" ")[1]), headers, body)


async def get(port: int, path: str) -> Reply:
    return await exchange(port, f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())


async def test_metrics_serves_the_registry_in_the_prometheus_text_format(
    endpoint: Endpoint,
) -> None:
    """/metrics answers the passed-in registry's figures in a format Prometheus parses."""
    endpoint.metrics.commands.labels("balance", "ok").inc(3)
    endpoint.metrics.command_duration.labels("balance").observe(0.02)

    reply = await get(endpoint.port, "/metrics")

    assert reply.status == 200
    assert reply.headers["content-type"] == CONTENT_TYPE_LATEST
    assert reply.headers["cache-control"] == "no-store"
    assert int(reply.headers["content-length"]) == len(reply.body)
    families = {f.name: f for f in text_string_to_metric_families(reply.body.decode())}
    commands = families["croupier_commands"]
    assert [(s.labels, s.value) for s in commands.samples if s.name.endswith("_total")] == [
        ({"command": "balance", "outcome": "ok"}, 3.0)
    ]
    assert families["croupier_command_duration_seconds"].type == "histogram"


async def test_healthz_answers_ok_as_json(endpoint: Endpoint) -> None:
    """/healthz answers 200 with {"status": "ok"} whether or not the server is ready."""
    assert not endpoint.readiness.ready

    reply = await get(endpoint.port, "/healthz")

    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"status": "ok"}


async def test_readyz_follows_every_condition_from_503_to_200_and_back(
    endpoint: Endpoint,
) -> None:
    """/readyz lists each condition, says 503 until all hold, 200 then, 503 on a lapse."""
    names = server_conditions(discord=False)

    pending = await get(endpoint.port, "/readyz")
    assert pending.status == 503
    document = pending.json()
    assert isinstance(document, dict)
    assert document["status"] == "not_ready"
    assert list(document["conditions"]) == list(names)
    assert not any(c["ok"] for c in document["conditions"].values())

    for name in names:
        if name != INTEGRITY:
            endpoint.readiness.set(name, True)
    assert (await get(endpoint.port, "/readyz")).status == 503
    endpoint.readiness.pending(INTEGRITY, "first scan running")
    scanning = await get(endpoint.port, "/readyz")
    assert scanning.status == 200
    assert scanning.json()["conditions"][INTEGRITY] == {
        "ok": False,
        "pending": True,
        "detail": "first scan running",
    }
    endpoint.readiness.set(INTEGRITY, True, "all good")
    ready = await get(endpoint.port, "/readyz")
    assert ready.status == 200
    assert ready.json() == {
        "status": "ready",
        "conditions": {
            n: {"ok": True, "pending": False, "detail": "all good" if n == INTEGRITY else ""}
            for n in names
        },
    }

    endpoint.readiness.set(INTEGRITY, False, "2 violations")
    lapsed = await get(endpoint.port, "/readyz")
    assert lapsed.status == 503
    lapsed_document = lapsed.json()
    assert isinstance(lapsed_document, dict)
    assert lapsed_document["conditions"][INTEGRITY] == {
        "ok": False,
        "pending": False,
        "detail": "2 violations",
    }


async def test_a_standard_http_client_reads_every_route(endpoint: Endpoint) -> None:
    """urllib, a client the server was not written against, gets the same answers."""
    base = f"http://127.0.0.1:{endpoint.port}"

    def fetch(path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(base + path, timeout=_EXCHANGE_SECONDS_MAX) as answer:
                return int(answer.status), bytes(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, bytes(error.read())

    metrics_status, metrics_body = await trio.to_thread.run_sync(fetch, "/metrics")
    assert metrics_status == 200
    assert any(
        f.name == "croupier_ready" for f in text_string_to_metric_families(metrics_body.decode())
    )
    assert await trio.to_thread.run_sync(fetch, "/healthz") == (200, b'{"status": "ok"}\n')
    assert (await trio.to_thread.run_sync(fetch, "/readyz"))[0] == 503
    assert (await trio.to_thread.run_sync(fetch, "/nowhere"))[0] == 404


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"this is not http\r\n\r\n", 400),
        (b"GET /metrics\r\n\r\n", 400),
        (b"GET  /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"G(T /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /metrics HTTP/one\r\nHost: x\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nA: b\x00c\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\n", 400),
        (b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"GET /metrics/ HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", 405),
        (b"DELETE /readyz HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (b"GET /healthz?verbose=1 HTTP/1.0\r\n\r\n", 200),
        (b"GET /healthz HTTP/1.1\nHost: x\n\n", 200),
    ],
)
async def test_each_request_gets_the_status_it_deserves(
    endpoint: Endpoint, raw: bytes, status: int
) -> None:
    """Malformed, misrouted and odd-but-valid requests each get a definite status; the
    routes' own refusals are JSON, and the server answers the next request."""
    reply = await exchange(endpoint.port, raw)

    assert reply.status == status
    if status in (404, 405):
        document = reply.json()
        assert isinstance(document, dict) and document["error"]
    assert (await get(endpoint.port, "/healthz")).status == 200


async def test_wrong_method_names_the_allowed_ones(endpoint: Endpoint) -> None:
    """A 405 carries an Allow header, as HTTP requires."""
    reply = await exchange(endpoint.port, b"PUT /healthz HTTP/1.1\r\nHost: x\r\n\r\n")

    assert reply.status == 405
    assert reply.headers["allow"] == "GET, HEAD"


async def test_head_gets_the_headers_without_the_body(endpoint: Endpoint) -> None:
    """HEAD answers the length GET would send, but sends no body."""
    full = await get(endpoint.port, "/healthz")
    reply = await exchange(endpoint.port, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")

    assert reply.status == 200
    assert reply.body == b""
    assert int(reply.headers["content-length"]) == len(full.body)


async def test_an_oversize_request_head_is_refused_and_the_server_lives_on(
    nursery: trio.Nursery,
) -> None:
    """A head past the byte bound (sent in pieces, as a slow client would) is refused,
    and the next request is served normally."""
    endpoint = await start_endpoint(nursery, HttpLimits(header_bytes_max=1_024))

    with trio.fail_after(_EXCHANGE_SECONDS_MAX):
        stream = await trio.open_tcp_stream("127.0.0.1", endpoint.port)
        async with stream:
            await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            answer = b""
            try:
                for _ in range(200):
                    await stream.send_all(b"X-Filler: " + b"a" * 500 + b"\r\n")
                    await trio.sleep(0.001)
            except trio.BrokenResourceError:
                pass
            with trio.move_on_after(1.0):
                while chunk := await stream.receive_some(65_536):
                    answer += chunk

    assert not answer.startswith(b"HTTP/1.1 200"), answer[:100]
    assert (await get(endpoint.port, "/healthz")).status == 200


async def test_a_slow_request_is_cut_off_after_the_idle_time(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A client that never finishes its head is disconnected after the read timeout."""
    endpoint = await start_endpoint(nursery, HttpLimits(read_idle_seconds=30))
    started = trio.current_time()

    stream = await trio.open_tcp_stream("127.0.0.1", endpoint.port)
    async with stream:
        await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        answer = await stream.receive_some(65_536)

    assert not answer.startswith(b"HTTP/1.1 200")
    assert trio.current_time() - started >= 30.0


async def test_a_client_that_leaves_without_a_word_costs_nothing(endpoint: Endpoint) -> None:
    """Connecting and closing at once, or resetting mid-head, does not disturb the server."""
    for partial_head in (b"", b"GET /heal"):
        stream = await trio.open_tcp_stream("127.0.0.1", endpoint.port)
        await stream.send_all(partial_head)
        await stream.aclose()

    assert (await get(endpoint.port, "/healthz")).status == 200


async def test_connections_past_the_bound_wait_until_a_slot_frees(nursery: trio.Nursery) -> None:
    """Idle connections hold slots; past connections_max a newcomer is not served (it
    waits in the kernel's backlog, costing no memory here) until one of them closes."""
    endpoint = await start_endpoint(nursery, HttpLimits(connections_max=2))
    idle = [await trio.open_tcp_stream("127.0.0.1", endpoint.port) for _ in range(2)]
    await trio.testing.wait_all_tasks_blocked(cushion=0.01)
    answers: list[Reply] = []

    async def newcomer() -> None:
        answers.append(await get(endpoint.port, "/healthz"))

    nursery.start_soon(newcomer)
    await trio.sleep(0.3)
    assert answers == []
    await idle[0].aclose()
    with trio.fail_after(_EXCHANGE_SECONDS_MAX):
        while not answers:
            await trio.sleep(0.01)
    await idle[1].aclose()

    assert answers[0].status == 200
    assert OPS_LIMITS.connections_max <= 64


class _BrokenCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        raise RuntimeError("a collector with a bug")


async def test_a_failing_collector_costs_one_scrape_not_the_server(endpoint: Endpoint) -> None:
    """A collector that raises makes /metrics answer 500; every route still answers after."""
    endpoint.metrics.registry.register(_BrokenCollector())

    assert (await get(endpoint.port, "/metrics")).status == 500
    assert (await get(endpoint.port, "/healthz")).status == 200
    assert (await get(endpoint.port, "/readyz")).status == 503


async def test_readiness_gauges_appear_in_the_scrape(endpoint: Endpoint) -> None:
    """croupier_ready and croupier_ready_condition follow the readiness conditions."""
    for name in server_conditions(discord=False):
        endpoint.readiness.set(name, True)
    endpoint.readiness.set(INTEGRITY, False, "checking")

    reply = await get(endpoint.port, "/metrics")

    samples = {
        (s.name, s.labels.get("condition")): s.value
        for f in text_string_to_metric_families(reply.body.decode())
        for s in f.samples
        if s.name.startswith("croupier_ready")
    }
    assert samples[("croupier_ready", None)] == 0.0
    assert samples[("croupier_ready_condition", INTEGRITY)] == 0.0
    assert samples[("croupier_ready_condition", "store_open")] == 1.0
