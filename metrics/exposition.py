"""What the ops routes answer, as plain values: the scrape and the readiness document.

The HTTP routes themselves live in ``bot.http.ops`` (on the one HTTP stack); this layer
only says what ``/metrics`` and ``/readyz`` contain, so it stays free of any transport.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from metrics.health import Readiness
from metrics.registry import Metrics

SCRAPE_CONTENT_TYPE = CONTENT_TYPE_LATEST


def scrape(metrics: Metrics) -> bytes:
    """Every figure of ``metrics``'s registry in the Prometheus text format; raises
    whatever a broken collector raises."""
    return generate_latest(metrics.registry)


def readiness_document(readiness: Readiness) -> tuple[bool, dict[str, Any]]:
    """Whether the server is ready, and the ``/readyz`` document listing each condition."""
    snapshot = readiness.snapshot()
    document = {
        "status": "ready" if snapshot.ready else "not_ready",
        "conditions": {
            c.name: {"ok": c.ok, "pending": c.pending, "detail": c.detail}
            for c in snapshot.conditions
        },
    }
    return snapshot.ready, document
