"""Prometheus figures, readiness, what the ops routes show, and structured logs.

``metrics`` imports none of the other layers; they import it. Build one ``Metrics`` per
process (or per test) over an explicit ``CollectorRegistry``; the global registry is
never used. ``bot.http.ops`` serves ``scrape`` and ``readiness_document`` over HTTP.
"""

from metrics.exposition import SCRAPE_CONTENT_TYPE, readiness_document, scrape
from metrics.health import Condition, Readiness, ReadinessSnapshot, server_conditions
from metrics.logs import configure_logging, log_event
from metrics.registry import Metrics, new_metrics

__all__ = [
    "SCRAPE_CONTENT_TYPE",
    "Condition",
    "Metrics",
    "Readiness",
    "ReadinessSnapshot",
    "configure_logging",
    "log_event",
    "new_metrics",
    "readiness_document",
    "scrape",
    "server_conditions",
]
