"""The scrape and health endpoint: ``/metrics``, ``/healthz`` and ``/readyz`` over HTTP/1.1.

The server is written for trio with a small parser of its own. It answers three GET
routes, each with a small response, so it needs no request body, no keep-alive and no
chunked encoding: it reads one request head, answers it and closes the connection. A
library would bring a dependency and much unused surface for that (h11 would suit trio
but is not a project dependency; the standard ``http.server`` is thread-based).

Everything is bounded: the size of a request head, the time to send it, the time to
write the answer, the number of open connections. A malformed request gets a 4xx answer
and a failure inside a route gets a 500; neither stops the server.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus

import trio
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from metrics.health import Readiness
from metrics.logs import log_event
from metrics.registry import Metrics

_log = logging.getLogger("croupier.metrics.http")

_JSON = "application/json"
_ALLOWED_METHODS = ("GET", "HEAD")
# A head ends at the first empty line; RFC 9112 lets a server accept a bare LF as a line end.
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(r"/[\x21-\x7e]*")
_VERSION = re.compile(r"HTTP/(\d)\.(\d)")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


@dataclass(frozen=True)
class HttpLimits:
    """Bounds on what one client can make the endpoint hold or wait for."""

    request_head_bytes_max: int = 8_192
    request_read_seconds_max: float = 10.0
    response_write_seconds_max: float = 10.0
    connections_max: int = 64
    # After answering, unread input is drained briefly before closing, so that the
    # kernel does not reset the connection and destroy the answer in flight.
    linger_bytes_max: int = 65_536
    linger_seconds_max: float = 1.0


DEFAULT_HTTP_LIMITS = HttpLimits()


@dataclass(frozen=True)
class _Request:
    """The parts of a request head the routes look at."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass(frozen=True)
class _Response:
    """A complete answer; ``body`` is omitted on the wire for HEAD requests."""

    status: HTTPStatus
    content_type: str
    body: bytes
    allow: str = ""


class _BadRequest(Exception):
    """A request the endpoint will not serve, with the status that says why."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _parse_request_head(head: bytes) -> _Request:
    """Parse a request line and its header lines (without the final empty line)."""
    # Latin-1 maps every byte to a character, so decoding cannot fail; the patterns
    # below then reject whatever HTTP does not allow.
    lines = [line.removesuffix("\r") for line in head.decode("latin-1").split("\n")]
    method, target, version = _parse_request_line(lines[0])
    headers = _parse_headers(lines[1:])
    if version == (1, 1) and "host" not in headers:
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "an HTTP/1.1 request needs a Host header")
    return _Request(method, target.partition("?")[0], headers)


def _parse_request_line(line: str) -> tuple[str, str, tuple[int, int]]:
    parts = line.split(" ")
    if len(parts) != 3:
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "malformed request line")
    method, target, version_text = parts
    if not _TOKEN.fullmatch(method):
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "malformed method")
    if not _TARGET.fullmatch(target):
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "the target must be a path starting with /")
    version = _VERSION.fullmatch(version_text)
    if version is None:
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "malformed HTTP version")
    if version.group(1) != "1":
        raise _BadRequest(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "only HTTP/1.x is served")
    return method, target, (1, int(version.group(2)))


def _parse_headers(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        # A missing colon, a space before it or a folded continuation line are all
        # ways to smuggle a second meaning past a proxy; RFC 9112 says reject them.
        if not colon or not _TOKEN.fullmatch(name):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "malformed header line")
        value = value.strip(" \t")
        if not _HEADER_VALUE.fullmatch(value):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "control character in a header value")
        key = name.lower()
        if key == "host" and key in headers:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "more than one Host header")
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


async def _read_request_head(stream: trio.abc.ReceiveStream, head_bytes_max: int) -> bytes | None:
    """The bytes of one request head, or None if the client closed without sending any."""
    buffer = bytearray()
    while True:
        end = _HEAD_END.search(buffer)
        if end is not None:
            return bytes(buffer[: end.start()])
        if len(buffer) >= head_bytes_max:
            raise _BadRequest(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                f"the request head is over {head_bytes_max} bytes",
            )
        chunk = await stream.receive_some(head_bytes_max - len(buffer))
        if not chunk:
            if buffer:
                raise _BadRequest(HTTPStatus.BAD_REQUEST, "the request ended inside its head")
            return None
        buffer += chunk


@dataclass
class _Endpoint:
    metrics: Metrics
    readiness: Readiness
    limits: HttpLimits
    connections_open: int = 0


def _route(request: _Request, metrics: Metrics, readiness: Readiness) -> _Response:
    """The answer to a well-formed request."""
    handlers: dict[str, Callable[[], _Response]] = {
        "/metrics": lambda: _metrics_response(metrics),
        "/healthz": _healthz_response,
        "/readyz": lambda: _readyz_response(readiness),
    }
    handler = handlers.get(request.path)
    if handler is None:
        return _error(HTTPStatus.NOT_FOUND, f"no such path: {request.path}")
    if request.method not in _ALLOWED_METHODS:
        allow = ", ".join(_ALLOWED_METHODS)
        response = _error(HTTPStatus.METHOD_NOT_ALLOWED, f"{request.path} accepts {allow}")
        return _Response(response.status, response.content_type, response.body, allow=allow)
    return handler()


def _metrics_response(metrics: Metrics) -> _Response:
    return _Response(HTTPStatus.OK, CONTENT_TYPE_LATEST, generate_latest(metrics.registry))


def _healthz_response() -> _Response:
    # Liveness means the event loop still runs tasks; answering at all proves it.
    return _json(HTTPStatus.OK, {"status": "ok"})


def _readyz_response(readiness: Readiness) -> _Response:
    snapshot = readiness.snapshot()
    document = {
        "status": "ready" if snapshot.ready else "not_ready",
        "conditions": {c.name: {"ok": c.ok, "detail": c.detail} for c in snapshot.conditions},
    }
    status = HTTPStatus.OK if snapshot.ready else HTTPStatus.SERVICE_UNAVAILABLE
    return _json(status, document)


def _json(status: HTTPStatus, document: object) -> _Response:
    return _Response(status, _JSON, json.dumps(document).encode() + b"\n")


def _error(status: HTTPStatus, message: str) -> _Response:
    return _json(status, {"error": message})


def _encode_response(response: _Response, *, head_only: bool) -> bytes:
    """The bytes of ``response`` on the wire, always closing the connection after it."""
    lines = [
        f"HTTP/1.1 {response.status.value} {response.status.phrase}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Cache-Control: no-store",
        "Connection: close",
    ]
    if response.allow:
        lines.append(f"Allow: {response.allow}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body


async def _answer(stream: trio.SocketStream, endpoint: _Endpoint) -> None:
    limits = endpoint.limits
    head_only = False
    path = ""
    with trio.move_on_after(limits.request_read_seconds_max) as reading:
        try:
            head = await _read_request_head(stream, limits.request_head_bytes_max)
            if head is None:
                return
            request = _parse_request_head(head)
            head_only = request.method == "HEAD"
            path = request.path
            response = _route_safely(request, endpoint)
        except _BadRequest as refusal:
            response = _error(refusal.status, refusal.message)
    if reading.cancelled_caught:
        response = _error(HTTPStatus.REQUEST_TIMEOUT, "the request head came too slowly")
    log_event(_log, "http_request", level=logging.DEBUG, path=path, status=response.status.value)
    await _send(stream, response, limits, head_only=head_only)


async def _send(
    stream: trio.SocketStream, response: _Response, limits: HttpLimits, *, head_only: bool
) -> None:
    with trio.move_on_after(limits.response_write_seconds_max):
        await stream.send_all(_encode_response(response, head_only=head_only))
        await _linger(stream, limits)


def _route_safely(request: _Request, endpoint: _Endpoint) -> _Response:
    try:
        return _route(request, endpoint.metrics, endpoint.readiness)
    except Exception:
        # A collector that raises must cost one scrape, not the endpoint.
        log_event(_log, "http_route_failed", level=logging.ERROR, exc_info=True, path=request.path)
        return _error(HTTPStatus.INTERNAL_SERVER_ERROR, "the server failed to answer")


async def _linger(stream: trio.SocketStream, limits: HttpLimits) -> None:
    await stream.send_eof()
    drained = 0
    with trio.move_on_after(limits.linger_seconds_max):
        while drained < limits.linger_bytes_max:
            chunk = await stream.receive_some(limits.linger_bytes_max - drained)
            if not chunk:
                return
            drained += len(chunk)


async def _handle_connection(stream: trio.SocketStream, endpoint: _Endpoint) -> None:
    # Counting happens between awaits, so no other connection task can interleave.
    endpoint.connections_open += 1
    try:
        if endpoint.connections_open > endpoint.limits.connections_max:
            busy = _error(HTTPStatus.SERVICE_UNAVAILABLE, "too many open connections")
            await _send(stream, busy, endpoint.limits, head_only=False)
        else:
            await _answer(stream, endpoint)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        # The client went away mid-exchange; there is nobody left to answer.
        pass
    except Exception:
        # serve_listeners would let this end the whole server; one connection is not
        # worth that, so it is logged and dropped.
        log_event(_log, "http_connection_failed", level=logging.ERROR, exc_info=True)
    finally:
        endpoint.connections_open -= 1
        await stream.aclose()


async def serve_metrics(
    host: str,
    port: int,
    metrics: Metrics,
    readiness: Readiness,
    *,
    limits: HttpLimits = DEFAULT_HTTP_LIMITS,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the endpoint on ``host:port`` until cancelled; report the bound port.

    ``port`` 0 picks a free port. ``host`` "" listens on every interface.
    """
    listeners = await trio.open_tcp_listeners(port, host=host or None)
    if port == 0:
        # With port 0 every address of the host gets its own random port; only one of
        # them can be reported, so only that one is kept.
        for extra in listeners[1:]:
            await extra.aclose()
        listeners = listeners[:1]
    bound_port: int = listeners[0].socket.getsockname()[1]
    endpoint = _Endpoint(metrics, readiness, limits)
    log_event(_log, "metrics_listening", host=host, port=bound_port)
    task_status.started(bound_port)
    await trio.serve_listeners(partial(_handle_connection, endpoint=endpoint), listeners)
