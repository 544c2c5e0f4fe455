"""Prometheus figures, readiness, the scrape/health endpoint and structured logs.

``metrics`` imports none of the other layers; they import it. Build one ``Metrics`` per
process (or per test) over an explicit ``CollectorRegistry``; the global registry is
never used. Hand the same ``Metrics`` and a ``Readiness`` to ``serve_metrics``.
"""

from metrics.health import Condition, Readiness, ReadinessSnapshot, server_conditions
from metrics.http import DEFAULT_HTTP_LIMITS, HttpLimits, serve_metrics
from metrics.logs import configure_logging, log_event
from metrics.registry import Metrics, new_metrics

__all__ = [
    "DEFAULT_HTTP_LIMITS",
    "Condition",
    "HttpLimits",
    "Metrics",
    "Readiness",
    "ReadinessSnapshot",
    "configure_logging",
    "log_event",
    "new_metrics",
    "serve_metrics",
    "server_conditions",
]
