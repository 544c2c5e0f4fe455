"""The one HTTP stack: hypercorn's trio worker serving an ASGI app, inside the server's
own trio run.

Hypercorn is a well-kept HTTP/1.1 and HTTP/2 server that runs natively on trio (no thread,
no second event loop), so a request handler can ``await`` the actor system directly.
The apps are Starlette apps (``bot.http.interactions`` today; the HTTP API and the
dashboard will add routes the same way): Starlette runs on anyio, which runs on trio, and
brings the routing, forms, cookies and middleware a dashboard needs.

Hypercorn bounds header sizes and idle time but not the number of open connections, so
``serve_http`` accepts connections itself, at most ``connections_max`` at once, and hands
each to hypercorn's trio connection handler. Past the bound, new connections wait in the
kernel's accept backlog instead of costing memory here.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ASGIFramework, ConnectionState
from hypercorn.utils import wrap_app

from limits import HttpLimits, http_accepts_per_wakeup_max

log = logging.getLogger("croupier.http")


class _TCPServer(TCPServer):
    """Hypercorn's connection handler, releasing a connection as soon as its client has
    gone: hypercorn leaves its keep-alive timer running when a client closes without
    sending a request, which held the connection's slot for ``keep_alive_seconds``."""

    async def _read_data(self) -> None:
        await super()._read_data()
        await self.idle_task.stop()


def hypercorn_config(limits: HttpLimits) -> HypercornConfig:
    config = HypercornConfig()
    config.h11_max_incomplete_size = limits.header_bytes_max
    config.h2_max_header_list_size = limits.header_bytes_max
    config.read_timeout = limits.read_idle_seconds
    config.keep_alive_timeout = limits.keep_alive_seconds
    config.keep_alive_max_requests = limits.keep_alive_requests_max
    config.include_server_header = False
    # Requests are counted by the app's own metrics; an access log line per interaction
    # would cost more than answering it.
    config.accesslog = None
    config.errorlog = log
    return config


async def open_http_listeners(
    host: str | None, port: int, limits: HttpLimits | None = None
) -> list[socket.socket]:
    """Bind ``host:port`` (port 0 picks one; host None: every interface); raises
    ``OSError`` if it cannot. Binding is separate from serving so a caller can report a
    taken address before anything runs."""
    backlog = (limits or HttpLimits()).backlog_connections
    listeners: list[socket.socket] = []
    for family, kind, proto, _, address in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
        except OSError:
            sock.close()
            for opened in listeners:
                opened.close()
            raise
        listeners.append(sock)
        # One address is enough once the port is chosen; binding port 0 again on
        # another family would pick a different port.
        if port == 0:
            break
    return listeners


def bound_port(listeners: list[socket.socket]) -> int:
    port: int = listeners[0].getsockname()[1]
    return port


async def serve_http(
    app: ASGIFramework,
    listeners: list[socket.socket],
    *,
    limits: HttpLimits | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``listeners`` (from ``open_http_listeners``) until cancelled;
    the sockets are closed when it returns."""
    limits = limits or HttpLimits()
    config = hypercorn_config(limits)
    slots = trio.Semaphore(limits.connections_max)
    wrapped = wrap_app(app, config.wsgi_max_body_size, "asgi")
    context = WorkerContext(None)

    async def handle(stream: trio.SocketStream) -> None:
        try:
            state = ConnectionState({})
            await _TCPServer(wrapped, config, context, state, stream).run()  # type: ignore[arg-type]
        finally:
            slots.release()

    try:
        async with trio.open_nursery() as nursery:
            for listener in listeners:
                nursery.start_soon(_accept_loop, listener, slots, handle, nursery)
            task_status.started()
    finally:
        for listener in listeners:
            listener.close()


async def _accept_loop(
    listener: socket.socket,
    slots: trio.Semaphore,
    handle: Callable[[trio.SocketStream], Awaitable[None]],
    nursery: trio.Nursery,
) -> None:
    """Accept every connection waiting, then wait for more. Accepting all of them in one
    go matters under a burst: one accept per pass of the scheduler (as trio's listeners
    do) leaves most of a thousand new connections in the kernel's backlog for seconds
    while the requests already accepted are served."""
    while True:
        await trio.lowlevel.wait_readable(listener)
        for _ in range(http_accepts_per_wakeup_max):
            try:
                slots.acquire_nowait()
            except trio.WouldBlock:
                await slots.acquire()
            try:
                connection, _ = listener.accept()
            except BlockingIOError:
                slots.release()
                break
            except OSError as exc:
                # Out of file descriptors and the like: wait a little rather than spin.
                slots.release()
                log.warning("accept failed: %s", exc)
                await trio.sleep(0.1)
                break
            connection.setblocking(False)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            stream = trio.SocketStream(trio.socket.from_stdlib_socket(connection))
            nursery.start_soon(handle, stream)
