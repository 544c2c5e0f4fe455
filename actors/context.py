"""What every economy and game actor needs: ``EconomyContext``.

It holds the store, the limits, the wall clock and the scope mode, with the per-scope
settings (cached) and the transfers counter. It is not the LMDB environment
(``store.env``), hence its name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors import keys
from actors.records import SETTINGS, ScopeSettings
from limits import Limits
from storage import Store


@dataclass
class EconomyContext:
    """What every economy actor needs: the store, limits, a wall clock, the scope mode."""

    store: Store
    limits: Limits
    now: Callable[[], float] = time.time
    global_scope: bool = False

    def scope_of(self, guild_id: int) -> int:
        """The economy scope of a guild: itself, or the shared global scope."""
        return keys.GLOBAL_SCOPE if self.global_scope else guild_id

    # Settings are read by every wallet batch and written only by ``Economy``, in this
    # process, which drops the cached copy after each write.
    _settings_cache: dict[int, ScopeSettings] = field(default_factory=dict, init=False, repr=False)

    def settings(self, scope: int) -> ScopeSettings:
        cached = self._settings_cache.get(scope)
        if cached is not None:
            return cached
        with self.store.read() as txn:
            raw = txn.get(keys.settings_key(scope), db=self.store.db("settings"))
        settings = SETTINGS.decode(raw) if raw is not None else ScopeSettings()
        if len(self._settings_cache) >= self.limits.settings_cached_scopes_max:
            self._settings_cache.clear()
        self._settings_cache[scope] = settings
        return settings

    def forget_settings(self, scope: int) -> None:
        self._settings_cache.pop(scope, None)

    # The transfers counter's children by reason: ``labels()`` takes a lock and builds a
    # key on every call, and every wallet commit counts its transfers.
    _transfer_counters: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def count_transfers(self, reason: str, count: int = 1) -> None:
        counter = self._transfer_counters.get(reason)
        if counter is None:
            counter = self._transfer_counters[reason] = self.store.metrics.transfers.labels(reason)
        counter.inc(count)
