"""The periodic work of a ready server: the integrity scan with its operational checks,
the outbox sweep, the retention of stored results, the gauges and the backup schedule.

Each job runs in the background for as long as the server serves, and a failed run is
logged and tried again at the next interval, so no job can stop the server.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

import trio

from actors import Economy, IntegrityReport, KeyedAnswers, check_store
from bot.dispatch import CommandSet
from limits import (
    backup_age_seconds_max,
    disk_free_bytes_min,
    gauges_refresh_seconds,
    map_used_ratio_max,
    outbox_sweep_seconds,
    timer_overdue_grace_seconds,
)
from metrics import Metrics, health, log_event
from storage.backup import newest_verified, run_backup_schedule

if TYPE_CHECKING:
    # The server builds the services and starts this work; only its type is read here.
    from bot.server import Services

log = logging.getLogger("croupier.server")


def start_periodic_work(
    nursery: trio.Nursery, services: Services, wall_clock: Callable[[], float]
) -> None:
    """The background jobs of a ready server: the integrity scan, the outbox sweep, the
    retention of stored results, the gauges and the backup schedule."""
    economy, metrics, commands = services.economy, services.metrics, services.commands
    # The full scan reads every record ever written, so it must not stand between
    # start and the first answer: it runs in the background, pending until then.
    services.readiness.pending(health.INTEGRITY, "the first full scan is running")
    nursery.start_soon(run_integrity_checks, services, wall_clock)
    nursery.start_soon(
        every, outbox_sweep_seconds, partial(sweep_outbox_once, economy), "outbox sweep failed"
    )
    nursery.start_soon(
        every,
        economy.limits.idempotency_prune_interval_seconds,
        partial(prune_idempotency_once, economy, metrics, commands),
        "pruning stored request results failed",
    )
    nursery.start_soon(_update_gauges, services)
    nursery.start_soon(
        partial(services.timers.run_gauges, overdue_grace_seconds=timer_overdue_grace_seconds)
    )
    config = services.config
    nursery.start_soon(
        partial(
            run_backup_schedule,
            services.store,
            config.backups_path,
            at=config.backup_time,
            keep_days=config.backup_keep_days,
            metrics=metrics,
            integrity=check_store,
            wall_clock=wall_clock,
            first_if_none=True,
        )
    )


async def run_integrity_checks(services: Services, wall_clock: Callable[[], float]) -> None:
    """The full integrity scan, at once and then every configured interval, for as long
    as the server runs. A scan that cannot run proves nothing, so it fails the
    ``integrity`` condition until one succeeds."""
    startup = True
    while True:
        try:
            await run_integrity(services, wall_clock, startup=startup)
        except Exception as exc:
            log.exception("integrity check failed to run")
            detail = f"the check could not run: {type(exc).__name__}"
            services.readiness.set(health.INTEGRITY, False, detail)
        startup = False
        await trio.sleep(services.config.integrity_interval_seconds)


async def run_integrity(
    services: Services, wall_clock: Callable[[], float], *, startup: bool = False
) -> IntegrityReport:
    """Run the integrity check off the trio thread and publish it as metrics/readiness."""
    store = services.store
    report = await trio.to_thread.run_sync(partial(check_store, store, now=wall_clock()))
    _operational_checks(services, report, wall_clock, startup=startup)
    metrics = services.metrics
    for check, count in report.counts.items():
        metrics.integrity_violations.labels(check).set(count)
    metrics.integrity_ok.set(1 if report.ok else 0)
    metrics.integrity_last_run.set(wall_clock())
    money_ok = all(not report.counts.get(c) for c in report.counts if not c.startswith("ops_"))
    problems = [f"{c}={n}" for c, n in sorted(report.counts.items()) if n]
    services.readiness.set(health.INTEGRITY, money_ok, ", ".join(problems) or "ok")
    level = logging.INFO if report.ok else logging.ERROR
    log_event(
        log,
        "integrity_checked",
        level=level,
        ok=report.ok,
        violations=",".join(problems) or "none",
        seconds=round(report.duration_seconds, 3),
    )
    for violation in report.violations:
        log_event(
            log,
            "integrity_violation",
            level=logging.ERROR,
            check=violation.check,
            detail=violation.detail,
        )
    return report


def _operational_checks(
    services: Services, report: IntegrityReport, wall_clock: Callable[[], float], *, startup: bool
) -> None:
    """Map usage, disk space, backup freshness and overdue timers, as ``ops_*`` checks."""
    store, config = services.store, services.config
    for name in ("ops_map_usage", "ops_disk_space", "ops_backup_fresh", "ops_timers_on_time"):
        report.passed(name)
    used, size = store.map_usage()
    report.figures["map_used_bytes"] = used
    if used / size > map_used_ratio_max:
        report.add("ops_map_usage", f"LMDB map {used / size:.0%} used of {size} bytes")
    free = shutil.disk_usage(store.path).free
    report.figures["disk_free_bytes"] = free
    if free < disk_free_bytes_min:
        report.add("ops_disk_space", f"only {free} bytes free under {store.path}")
    newest = newest_verified(config.backups_path)
    if newest is not None:
        age = wall_clock() - newest.created_at
        report.figures["backup_age_seconds"] = int(age)
        if age > backup_age_seconds_max:
            report.add("ops_backup_fresh", f"newest verified backup is {age / 3600:.1f} h old")
    elif not startup:
        report.add("ops_backup_fresh", "no verified backup yet")
    overdue = services.timers.overdue(timer_overdue_grace_seconds)
    report.figures["timers_overdue"] = overdue
    if overdue and not startup:
        report.add("ops_timers_on_time", f"{overdue} timers overdue by over 5 minutes")


def publish_money_supply(economy: Economy, metrics: Metrics) -> None:
    """Coins in circulation per scope, as the economy counts them. The largest scopes
    get their own series, the rest are summed as "other", keeping the label set
    bounded."""
    ranked = sorted(economy.money_supply().items(), key=lambda item: -item[1])
    scopes_max = economy.limits.metrics_scopes_max
    metrics.money_supply.clear()
    for scope, coins in ranked[:scopes_max]:
        metrics.money_supply.labels(str(scope)).set(coins)
    rest = sum(coins for _, coins in ranked[scopes_max:])
    if len(ranked) > scopes_max:
        metrics.money_supply.labels("other").set(rest)


async def every(seconds: float, job: Callable[[], Awaitable[object]], failure: str) -> None:
    """Run ``job`` every ``seconds``; a failed run is logged and the next one comes anyway."""
    while True:
        await trio.sleep(seconds)
        try:
            await job()
        except Exception:
            log.exception(failure)


async def sweep_outbox_once(economy: Economy) -> int:
    """Deliver transfers whose first delivery did not finish (a busy wallet, a timeout)."""
    delivered = await economy.deliver_pending()
    if delivered:
        log_event(log, "outbox_swept", delivered=delivered)
    return delivered


async def prune_idempotency_once(
    economy: Economy, metrics: Metrics, commands: CommandSet | None = None
) -> int:
    """One pass of the retention: prune, count, log; how many results were forgotten.

    The wallets' stored results and the interactions' and API requests' stored
    answers share the one retention, so an id is answered the same for as long as it is
    remembered at all."""
    pruned = await economy.prune_idempotency()
    before = economy.context.now() - economy.limits.idempotency_retention_seconds
    if commands is not None and commands.answers is not None:
        pruned += await commands.answers.prune(before)
    api_answers = KeyedAnswers(
        economy.store, economy.context.now, "api_answers", "api_answers_by_time"
    )
    pruned += await api_answers.prune(before)
    metrics.idempotency_pruned.inc(pruned)
    if pruned:
        log_event(log, "idempotency_pruned", records=pruned)
    return pruned


async def _update_gauges(services: Services) -> None:
    while True:
        services.store.update_map_metrics()
        publish_money_supply(services.economy, services.metrics)
        await trio.sleep(gauges_refresh_seconds)
