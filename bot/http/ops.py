"""The operator's routes on the metrics address: ``/metrics``, ``/healthz``, ``/readyz``.

They run on the one HTTP stack (``bot.http.server``: hypercorn's trio worker, bounded
connections, header sizes and idle times) as their own small Starlette app, on their
own listener, loopback by default, so a scrape never competes with the public app's
clients for connection slots. What the routes contain comes from ``metrics``
(``scrape``, ``readiness_document``); this module only speaks HTTP.

Every answer is ``Cache-Control: no-store``; errors are JSON ``{"error": ...}``. A
collector that raises costs one scrape (500), never the listener.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.http.server import bound_port, open_http_listeners, serve_http
from limits import HttpLimits
from metrics import (
    SCRAPE_CONTENT_TYPE,
    Metrics,
    Readiness,
    log_event,
    readiness_document,
    scrape,
)

log = logging.getLogger("croupier.http.ops")

# The metrics address is for one Prometheus and a few health probes, not the public.
OPS_LIMITS = HttpLimits(connections_max=64, backlog_connections=64, header_bytes_max=8_192)
_NO_STORE = {"Cache-Control": "no-store"}


def _json(status: int, document: object, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(document).encode() + b"\n",
        status_code=status,
        media_type="application/json",
        headers={**_NO_STORE, **(headers or {})},
    )


def ops_app(metrics: Metrics, readiness: Readiness) -> Starlette:
    """The ops routes over one server's ``metrics`` and ``readiness``."""

    async def metrics_route(request: Request) -> Response:
        try:
            body = scrape(metrics)
        except Exception:
            log_event(log, "scrape_failed", level=logging.ERROR, exc_info=True)
            return _json(500, {"error": "the server failed to answer"})
        return Response(body, media_type=SCRAPE_CONTENT_TYPE, headers=_NO_STORE)

    async def healthz_route(request: Request) -> Response:
        # Liveness means the event loop still runs tasks; answering at all proves it.
        return _json(200, {"status": "ok"})

    async def readyz_route(request: Request) -> Response:
        ready, document = readiness_document(readiness)
        return _json(200 if ready else 503, document)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException), exc
        headers = dict(exc.headers or {})
        if "Allow" in headers:
            # Starlette keeps a route's methods in a set; the header lists them in order.
            headers["Allow"] = ", ".join(sorted(headers["Allow"].split(", ")))
        message = f"no such path: {request.url.path}" if exc.status_code == 404 else exc.detail
        if exc.status_code == 405:
            message = f"{request.url.path} accepts {headers.get('Allow', 'GET, HEAD')}"
        return _json(exc.status_code, {"error": message}, headers)

    get = ["GET", "HEAD"]
    handlers: dict[Any, Any] = {HTTPException: http_error}
    app = Starlette(
        routes=[
            Route("/metrics", metrics_route, methods=get),
            Route("/healthz", healthz_route, methods=get),
            Route("/readyz", readyz_route, methods=get),
        ],
        exception_handlers=handlers,
    )
    # A path is served exactly as written: "/metrics/" is not a second name for it.
    app.router.redirect_slashes = False
    return app


async def serve_ops(
    host: str,
    port: int,
    metrics: Metrics,
    readiness: Readiness,
    *,
    limits: HttpLimits = OPS_LIMITS,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the ops routes on ``host:port`` until cancelled; report the bound port.

    ``port`` 0 picks a free port. ``host`` "" listens on every interface. Raises
    ``OSError`` (before reporting) when the address cannot be bound.
    """
    listeners = await open_http_listeners(host or None, port, limits)
    if port == 0:
        # With port 0 every address of the host gets its own random port; only one of
        # them can be reported, so only that one is kept.
        for extra in listeners[1:]:
            extra.close()
        listeners = listeners[:1]
    bound = bound_port(listeners)
    log_event(log, "metrics_listening", host=host, port=bound)
    # Starlette's ASGI signature is looser than hypercorn's typing of an app.
    app: Any = ops_app(metrics, readiness)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve_http, app, listeners, limits=limits))
        task_status.started(bound)
