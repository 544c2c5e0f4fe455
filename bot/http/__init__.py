"""HTTP: one server stack (hypercorn on trio, Starlette apps) and the surfaces on it.

- ``server``: the listeners and the one hypercorn serve loop every surface runs in.
- ``ops``: ``/metrics``, ``/healthz`` and ``/readyz`` on the loopback metrics address.
- ``interactions`` (with ``payload`` for parsing and ``discord_rest`` for the few REST
  calls it makes): Discord's Ed25519-signed interactions endpoint, answered in the
  HTTP response.
- ``api`` (the route table) over ``api_base`` (tokens, rate limits, idempotent writes),
  ``api_members`` and ``api_shop``; ``openapi`` is its document.
- ``dashboard`` (the app, login, error pages) over ``dashboard_auth`` (Discord OAuth and
  sessions), ``dashboard_base`` (guards, forms, rendering), ``dashboard_forms`` and
  ``dashboard_views``; ``templates/`` and ``static/`` beside them.

Every surface calls the domain through ``actors`` (none reads the store itself); the API
and the dashboard answer the domain's refusals with ``bot.dispatch.user_error``, the
command layer's one mapping of errors to codes.
"""

from bot.http.server import bound_port, open_http_listeners, serve_http

__all__ = ["bound_port", "open_http_listeners", "serve_http"]
