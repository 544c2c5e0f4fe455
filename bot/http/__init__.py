"""HTTP: one server stack (hypercorn on trio, Starlette apps) and the surfaces on it."""

from bot.http.server import bound_port, open_http_listeners, serve_http

__all__ = ["bound_port", "open_http_listeners", "serve_http"]
