"""Readiness: the named conditions a server must meet before it serves users.

Each part of the server owns one condition and sets it as its state changes: the store
sets ``store_open``, the migrator ``migrations_done``, the supervisor
``recovery_finished``, the Discord transport ``discord_connected`` and the integrity
checker ``integrity``. The server is ready when every condition holds or is pending.
``/readyz`` shows them all, and the ``croupier_ready`` and ``croupier_ready_condition``
gauges follow every change.

A pending condition is work that runs after the server is ready and must not hold it
back: the full integrity scan of a large store takes minutes, and boot must not grow with
history. It shows as pending until its result replaces it; a failed result then takes the
server out of readiness like any other condition.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from limits import readiness_conditions_max
from metrics.registry import Metrics

STORE_OPEN = "store_open"
MIGRATIONS_DONE = "migrations_done"
RECOVERY_FINISHED = "recovery_finished"
DISCORD_CONNECTED = "discord_connected"
INTEGRITY = "integrity"

# Condition names become label values, so they must be few and fixed in the code.
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_PENDING = "not reported yet"


@dataclass(frozen=True)
class Condition:
    """One readiness condition: whether it holds and a line on why."""

    name: str
    ok: bool
    detail: str
    pending: bool = False


@dataclass(frozen=True)
class ReadinessSnapshot:
    """Every condition at one instant, and whether they made the server ready."""

    ready: bool
    conditions: tuple[Condition, ...]


def server_conditions(*, discord: bool) -> tuple[str, ...]:
    """The conditions a Croupier server waits for; Discord only when it is configured."""
    names = [STORE_OPEN, MIGRATIONS_DONE, RECOVERY_FINISHED, INTEGRITY]
    if discord:
        names.append(DISCORD_CONNECTED)
    return tuple(names)


class Readiness:
    """Named readiness conditions, mirrored into the readiness gauges.

    Conditions declared up front start as not holding, so a server is not ready until
    each part has reported. A condition first set later joins the list. A Readiness with
    no condition at all is not ready: nothing has been proved yet.
    """

    def __init__(self, metrics: Metrics, conditions: Iterable[str] = ()) -> None:
        self._metrics = metrics
        # The integrity checker may report from a worker thread while the HTTP handler
        # reads from the trio thread; the lock keeps each snapshot and gauge consistent.
        self._lock = threading.Lock()
        self._conditions: dict[str, Condition] = {}
        for name in conditions:
            self.set(name, False, _PENDING)

    def set(self, name: str, ok: bool, detail: str = "") -> None:
        """Record whether condition ``name`` holds, with a short human-readable detail."""
        assert _NAME.fullmatch(name), f"condition name {name!r} is not snake_case"
        with self._lock:
            assert name in self._conditions or len(self._conditions) < readiness_conditions_max
            self._conditions[name] = Condition(name, ok, detail)
            self._metrics.ready_conditions.labels(name).set(1 if ok else 0)
            self._metrics.ready.set(1 if self._is_ready() else 0)

    def pending(self, name: str, detail: str) -> None:
        """Record that condition ``name`` is being established in the background: it
        does not hold yet, and it does not keep the server from being ready."""
        assert _NAME.fullmatch(name), f"condition name {name!r} is not snake_case"
        with self._lock:
            assert name in self._conditions or len(self._conditions) < readiness_conditions_max
            self._conditions[name] = Condition(name, False, detail, pending=True)
            self._metrics.ready_conditions.labels(name).set(0)
            self._metrics.ready.set(1 if self._is_ready() else 0)

    def snapshot(self) -> ReadinessSnapshot:
        """Every condition, in the order they were declared, and the verdict on them."""
        with self._lock:
            return ReadinessSnapshot(self._is_ready(), tuple(self._conditions.values()))

    @property
    def ready(self) -> bool:
        """Whether there is at least one condition and every condition holds or is
        pending."""
        with self._lock:
            return self._is_ready()

    def _is_ready(self) -> bool:
        conditions = self._conditions.values()
        return bool(self._conditions) and all(c.ok or c.pending for c in conditions)
