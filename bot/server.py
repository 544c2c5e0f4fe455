"""The server: everything wired together, in boot order, with a graceful shutdown.

Boot: metrics endpoint (so /healthz answers during boot), instance lock and store
(migrations), actor system, economy and games, delivery of transfers left in flight,
recovery of games, timers, then the transport. Boot reads only live state (transfers in
flight, the live-game index, due timers), so it does not grow with history; the full
integrity scan runs in the background once the server is ready. Shutdown on
SIGINT or SIGTERM runs the other way: the transport stops taking interactions and lets
in-flight ones finish, the actors drain their mailboxes, the writer flushes, the lock is
released.
"""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

import trio

from actors import keys
from actors.answers import KeyedAnswers
from actors.casino import Casino, RunningCasino, run_casino, tune_gc
from actors.economy import Economy
from actors.games import Games
from actors.integrity import IntegrityReport, check_store
from actors.runtime import ActorSystem
from actors.timers import TimerService
from bot.commands import build_command_set
from bot.commands.games import games_commands
from bot.config import Config
from bot.dispatch import CommandSet, RateLimit
from bot.http.ops import serve_ops
from limits import Limits
from metrics import (
    Metrics,
    Readiness,
    configure_logging,
    health,
    log_event,
    new_metrics,
)
from storage import InstanceLock, Store, unpackb
from storage.backup import newest_verified, run_backup_schedule

log = logging.getLogger("croupier.server")

Transport = Literal["auto", "console", "discord", "none"]

# Operational thresholds of the integrity run, beside the money checks.
DISK_FREE_BYTES_MIN = 256 * 1024 * 1024
MAP_USED_RATIO_MAX = 0.9
BACKUP_AGE_SECONDS_MAX = 26 * 3600
TIMER_OVERDUE_GRACE_SECONDS = 300.0
OUTBOX_SWEEP_SECONDS = 60.0
GAUGES_SECONDS = 5.0
DISCORD_RETRY_SECONDS_MIN = 1.0
DISCORD_RETRY_SECONDS_MAX = 60.0


class StartupError(Exception):
    """The server cannot start; the message says what to change."""


@dataclass
class Services:
    config: Config
    metrics: Metrics
    readiness: Readiness
    store: Store
    actors: ActorSystem
    economy: Economy
    games: Games
    timers: TimerService
    commands: CommandSet
    # The public HTTP app's port once it listens (None when it does not).
    http_port: int | None = None


def limits_for(config: Config) -> Limits:
    return Limits(
        game_idle_seconds_default=float(config.game_idle_seconds),
        game_recovery_seconds_default=float(config.game_recovery_seconds),
    )


async def serve(
    config: Config,
    *,
    transport: Transport = "auto",
    console_json: bool = False,
    exit_on_eof: bool = False,
    metrics_endpoint: bool = True,
    public_http: bool = False,
    wall_clock: Callable[[], float] = time.time,
    task_status: trio.TaskStatus[Services] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the server until SIGINT/SIGTERM (or, with ``exit_on_eof``, the console's end
    of input). Without ``metrics_endpoint`` nothing listens on the metrics address. With
    ``public_http`` (``croupier run``) the public HTTP app (the API, and the dashboard
    when it is on) listens on ``http_addr``; an enabled dashboard turns it on in any
    mode."""
    configure_logging(config.log_level, config.log_file or None, config.log_json)
    if transport == "auto":
        transport = "discord" if config.discord_enabled else "console"
    metrics = new_metrics(process_collectors=True)
    gateway = transport == "discord" and config.discord_gateway
    readiness = Readiness(metrics, health.server_conditions(discord=gateway))
    host, port = config.metrics_host_port
    # The lock comes first: a second server on the same data must stop before it touches
    # anything, the metrics port included.
    with InstanceLock(config.data_dir) as lock:
        log_event(log, "lock_acquired", path=str(lock.path))
        async with trio.open_nursery() as outer:
            stop = trio.Event()
            await outer.start(_watch_signals, stop)
            if metrics_endpoint:
                try:
                    await outer.start(serve_ops, host, port, metrics, readiness)
                except OSError as exc:
                    raise StartupError(
                        f"cannot listen on {config.metrics_addr} (CROUPIER_METRICS_ADDR): "
                        f"{exc.strerror}; set CROUPIER_METRICS_ADDR to a free address"
                    ) from exc
            else:
                log_event(log, "metrics_off", serving="nothing; set CROUPIER_METRICS_ADDR")

            def store_opened(store: Store) -> None:
                log_event(
                    log,
                    "store_opened",
                    path=str(store.path),
                    schema_version=store.schema_version,
                    migrations_applied=",".join(store.migrations_applied) or "none",
                )
                readiness.set(health.STORE_OPEN, True, str(store.path))
                readiness.set(health.MIGRATIONS_DONE, True, f"schema {store.schema_version}")

            # The lock is held above, so the store does not take it again.
            async with run_casino(
                config.data_dir,
                limits=limits_for(config),
                metrics=metrics,
                wall_clock=wall_clock,
                global_scope=config.economy_scope == "global",
                lock=False,
                on_store_open=store_opened,
            ) as running:
                await _run(
                    config,
                    readiness,
                    running,
                    transport=transport,
                    console_json=console_json,
                    exit_on_eof=exit_on_eof,
                    stop=stop,
                    public_http=public_http,
                    wall_clock=wall_clock,
                    task_status=task_status,
                )
            outer.cancel_scope.cancel()
    log_event(log, "stopped", lock="released")


async def _run(
    config: Config,
    readiness: Readiness,
    running: RunningCasino,
    *,
    transport: Transport,
    console_json: bool,
    exit_on_eof: bool,
    stop: trio.Event,
    public_http: bool,
    wall_clock: Callable[[], float],
    task_status: trio.TaskStatus[Services],
) -> None:
    """Serve the booted domain until the transport ends; the periodic work runs beside
    it and stops first, then ``run_casino`` drains the actors."""
    casino, boot = running.casino, running.boot
    tune_gc()
    assert boot is not None and boot.recovery is not None
    delivered, recovery = boot.transfers_delivered, boot.recovery
    log_event(
        log,
        "recovered",
        transfers_delivered=delivered,
        games_resumed=recovery.resumed,
        games_refunded=recovery.refunded,
    )
    readiness.set(
        health.RECOVERY_FINISHED,
        True,
        f"{delivered} transfers delivered, {recovery.refunded} games refunded",
    )
    services = Services(
        config,
        running.metrics,
        readiness,
        running.store,
        casino.actors,
        casino.economy,
        casino.games,
        casino.timers,
        _commands(config, casino, running.metrics),
    )
    async with trio.open_nursery() as periodic:
        start_periodic_work(periodic, services, wall_clock)
        task_status.started(services)
        await _serve_transport(
            services, transport, console_json, exit_on_eof, stop, public_http=public_http
        )
        log_event(log, "shutting_down", resident_actors=casino.actors.resident)
        periodic.cancel_scope.cancel()


def _commands(config: Config, casino: Casino, metrics: Metrics) -> CommandSet:
    """Every command, the economy's and the games', behind the per-member rate limit."""
    rate_limit = RateLimit(
        refill_per_second=config.ratelimit_commands_per_minute / 60.0,
        burst_commands=config.ratelimit_burst,
    )
    game_commands, game_buttons = games_commands(casino.games, casino.economy)
    return build_command_set(
        economy=casino.economy,
        metrics=metrics,
        rate_limit=rate_limit,
        extra_commands=game_commands,
        extra_buttons=game_buttons,
    )


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
        _every, OUTBOX_SWEEP_SECONDS, partial(sweep_outbox_once, economy), "outbox sweep failed"
    )
    nursery.start_soon(
        _every,
        economy.limits.idempotency_prune_interval_seconds,
        partial(prune_idempotency_once, economy, metrics, commands),
        "pruning stored request results failed",
    )
    nursery.start_soon(_update_gauges, services)
    nursery.start_soon(
        partial(services.timers.run_gauges, overdue_grace_seconds=TIMER_OVERDUE_GRACE_SECONDS)
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


async def _serve_transport(
    services: Services,
    transport: Transport,
    console_json: bool,
    exit_on_eof: bool,
    stop: trio.Event,
    *,
    public_http: bool,
) -> None:
    """Serve until ``stop`` (a signal), or in console mode until /quit or end of input
    when ``exit_on_eof``; without it, a console whose input is closed keeps serving."""
    config = services.config
    async with trio.open_nursery() as nursery:
        if config.interactions_addr:
            await _start_interactions_endpoint(services, nursery, register=transport == "discord")
        if public_http or config.dashboard_enabled:
            await _start_public_app(services, nursery)
        if transport == "discord" and config.discord_gateway:
            readiness = services.readiness

            def on_connected(ok: bool) -> None:
                readiness.set(health.DISCORD_CONNECTED, ok, "gateway ready" if ok else "down")

            await run_discord_until(services.commands, config, services.metrics, on_connected, stop)
        elif transport == "console":
            from bot.console import run_console_stdio

            log_event(log, "console_ready", user=config.console_user, guild=config.console_guild)
            await run_console_stdio(
                services.commands,
                json_mode=console_json,
                user_id=config.console_user,
                guild_id=config.console_guild,
                admin=config.console_admin,
                stop=stop,
            )
            if not exit_on_eof and not stop.is_set():
                # `croupier run` is a server first: with its input closed (a service
                # manager, /dev/null) it keeps serving until it is signalled.
                log_event(log, "console_closed", serving="until SIGINT or SIGTERM")
                await stop.wait()
        else:
            await stop.wait()
        nursery.cancel_scope.cancel()


async def _start_interactions_endpoint(
    services: Services, nursery: trio.Nursery, *, register: bool
) -> None:
    """Serve Discord's HTTP interactions endpoint in ``nursery``. Without the gateway
    (which registers the commands when it connects) it registers them over REST."""
    from bot.http import open_http_listeners
    from bot.http.interactions import run_endpoint

    config = services.config
    host, port = config.interactions_host_port
    try:
        listeners = await open_http_listeners(host, port)
    except OSError as exc:
        raise StartupError(
            f"cannot listen on {config.interactions_addr} (CROUPIER_INTERACTIONS_ADDR): "
            f"{exc.strerror}"
        ) from exc
    await nursery.start(
        partial(
            run_endpoint,
            services.commands,
            listeners,
            public_key_hex=config.discord_public_key,
            api_url=config.discord_api_url,
            token=config.discord_token,
            metrics=services.metrics,
            readiness=services.readiness,
            register=register and not config.discord_gateway,
        )
    )
    log_event(log, "interactions_endpoint_ready", addr=config.interactions_addr)


async def _start_public_app(services: Services, nursery: trio.Nursery) -> None:
    """Serve the public HTTP app on CROUPIER_HTTP_ADDR in ``nursery``: the HTTP API at
    /api/v1 and, when it is on, the web dashboard at /dashboard."""
    from bot.http import bound_port, open_http_listeners
    from bot.http.api import API_PREFIX

    config = services.config
    host, port = config.http_host_port
    try:
        listeners = await open_http_listeners(host, port)
    except OSError as exc:
        raise StartupError(
            f"cannot listen on {config.http_addr} (CROUPIER_HTTP_ADDR): {exc.strerror}"
        ) from exc
    await nursery.start(_serve_public_app, services, listeners)
    services.http_port = bound_port(listeners)
    log_event(
        log,
        "public_http_ready",
        addr=config.http_addr,
        port=services.http_port,
        api=API_PREFIX,
        dashboard="/dashboard" if config.dashboard_enabled else "off",
    )


async def _serve_public_app(
    services: Services,
    listeners: list[socket.socket],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    from contextlib import AsyncExitStack

    from starlette.applications import Starlette
    from starlette.routing import BaseRoute

    from bot.http import serve_http
    from bot.http.api import ApiLimits, HttpApi, json_error_handlers
    from bot.http.dashboard import open_dashboard

    config = services.config
    rate = RateLimit(
        refill_per_second=config.api_ratelimit_requests_per_minute / 60.0,
        burst_commands=config.api_ratelimit_burst,
    )
    api = HttpApi(services.economy, limits=ApiLimits(rate=rate))
    routes: list[BaseRoute] = [api.mount()]
    async with AsyncExitStack() as stack:
        if config.dashboard_enabled:
            dashboard = await stack.enter_async_context(
                open_dashboard(
                    config,
                    economy=services.economy,
                    games=services.games,
                    timers=services.timers,
                    readiness=services.readiness,
                    timers_overdue_grace_seconds=TIMER_OVERDUE_GRACE_SECONDS,
                )
            )
            routes.append(dashboard.mount())
        nursery = await stack.enter_async_context(trio.open_nursery())
        app = Starlette(routes=routes, exception_handlers=json_error_handlers())
        # A path is served as written: "/api/v1/guilds/1/items/" is not a second name.
        app.router.redirect_slashes = False
        await nursery.start(serve_http, app, listeners)
        task_status.started()


async def run_discord_until(
    commands: CommandSet,
    config: Config,
    metrics: Metrics,
    on_connected: Callable[[bool], None],
    stop: trio.Event,
) -> None:
    """Serve Discord until ``stop``; reconnect with backoff when Discord cannot be reached.

    A network failure or a dropped gateway is retried (the server goes on serving its
    metrics and reports Discord as not connected meanwhile). A refused token is not
    something waiting fixes, so it stops the server with one line.
    """
    import aiohttp
    from interactions.client.errors import LoginError

    from bot.discord_client import GatewayClosed, run_discord

    backoff = DISCORD_RETRY_SECONDS_MIN
    while not stop.is_set():
        try:
            await run_discord(
                commands,
                token=config.discord_token,
                api_url=config.discord_api_url,
                metrics=metrics,
                on_connected=on_connected,
                stop=stop,
                shards=config.discord_shard_count,
                shard_ids=config.discord_shard_id_list,
            )
            return
        except LoginError as exc:
            raise StartupError(
                f"Discord refused the bot token (CROUPIER_DISCORD_TOKEN): {exc}"
            ) from exc
        except (GatewayClosed, aiohttp.ClientError, OSError) as exc:
            on_connected(False)
            log_event(
                log,
                "discord_unavailable",
                level=logging.WARNING,
                error=str(exc) or type(exc).__name__,
                retry_in_seconds=backoff,
            )
        with trio.move_on_after(backoff):
            await stop.wait()
        backoff = min(backoff * 2, DISCORD_RETRY_SECONDS_MAX)


async def _watch_signals(
    stop: trio.Event, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Turn SIGINT and SIGTERM into ``stop`` for the whole life of the server.

    The receiver stays open from before boot until the store is closed, so a signal during
    boot stops the server as soon as it is up, and a second Ctrl-C during the shutdown is
    logged instead of raising KeyboardInterrupt in the middle of the writer's flush.
    """
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            name = signal.Signals(signum).name
            log_event(log, "signal", signal=name, stopping="already" if stop.is_set() else "now")
            stop.set()


# --- periodic work ---------------------------------------------------------------------


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
    if used / size > MAP_USED_RATIO_MAX:
        report.add("ops_map_usage", f"LMDB map {used / size:.0%} used of {size} bytes")
    free = shutil.disk_usage(store.path).free
    report.figures["disk_free_bytes"] = free
    if free < DISK_FREE_BYTES_MIN:
        report.add("ops_disk_space", f"only {free} bytes free under {store.path}")
    newest = newest_verified(config.backups_path)
    if newest is not None:
        age = wall_clock() - newest.created_at
        report.figures["backup_age_seconds"] = int(age)
        if age > BACKUP_AGE_SECONDS_MAX:
            report.add("ops_backup_fresh", f"newest verified backup is {age / 3600:.1f} h old")
    elif not startup:
        report.add("ops_backup_fresh", "no verified backup yet")
    overdue = services.timers.overdue(TIMER_OVERDUE_GRACE_SECONDS)
    report.figures["timers_overdue"] = overdue
    if overdue and not startup:
        report.add("ops_timers_on_time", f"{overdue} timers overdue by over 5 minutes")


def publish_money_supply(store: Store, metrics: Metrics) -> None:
    """Coins in circulation per scope: what its system accounts have issued.

    Every coin a user holds, a game escrows or a transfer carries was issued by a system
    account, so the negated sum of a scope's (three) system accounts is its supply. That is
    a short scan, unlike summing every wallet. The largest scopes get their own series,
    the rest are summed as "other", keeping the label set bounded.
    """
    supply: dict[int, int] = {}
    with store.read() as txn:
        for key, value in txn.cursor(db=store.db("system")):
            scope = keys.read_u64(key)
            supply[scope] = supply.get(scope, 0) - unpackb(value)
    ranked = sorted(supply.items(), key=lambda item: -item[1])
    scopes_max = store.limits.metrics_scopes_max
    metrics.money_supply.clear()
    for scope, coins in ranked[:scopes_max]:
        metrics.money_supply.labels(str(scope)).set(coins)
    rest = sum(coins for _, coins in ranked[scopes_max:])
    if len(ranked) > scopes_max:
        metrics.money_supply.labels("other").set(rest)


async def _every(seconds: float, job: Callable[[], Awaitable[object]], failure: str) -> None:
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
        publish_money_supply(services.store, services.metrics)
        await trio.sleep(GAUGES_SECONDS)
