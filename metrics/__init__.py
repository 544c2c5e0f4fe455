"""Prometheus figures for Croupier.

``metrics`` imports none of the other layers; they import it. Build one ``Metrics`` per
process (or per test) over an explicit ``CollectorRegistry``; the global registry is
never used.
"""

from metrics.registry import Metrics, new_metrics

__all__ = ["Metrics", "new_metrics"]
