"""The server: everything wired together, in boot order, with a graceful shutdown.

Boot: metrics endpoint (so /healthz answers during boot), instance lock and store
(migrations), actor system, economy and games, delivery of transfers left in flight,
recovery of games, timers, then the transport. Boot reads only live state (transfers in
flight, the live-game index, due timers), so it does not grow with history; the full
integrity scan runs in the background once the server is ready, with the rest of the
periodic work (``bot.periodic``). The domain itself is opened, booted and closed by
``actors.casino.run_casino``; this module adds the transports around it. Shutdown on
SIGINT or SIGTERM runs the other way: the transport stops taking interactions and lets
in-flight ones finish, the actors drain their mailboxes, the writer flushes, the lock is
released.
"""

from __future__ import annotations

import logging
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Literal

import trio

from actors import (
    ActorSystem,
    Casino,
    DiscordPort,
    Economy,
    RunningCasino,
    TimerService,
    run_casino,
    tune_gc,
)
from actors.games import Games
from actors.scheduler import Scheduler
from bot.commands import build_command_set
from bot.commands.games import games_commands
from bot.commands.scheduler import scheduler_commands
from bot.config import Config
from bot.discord_actions import DiscordActions
from bot.dispatch import CommandSet
from bot.http.ops import serve_ops
from bot.periodic import start_periodic_work
from limits import (
    Limits,
    RateLimit,
    discord_connect_retry_seconds_max,
    discord_connect_retry_seconds_min,
    timer_overdue_grace_seconds,
)
from metrics import (
    Metrics,
    Readiness,
    configure_logging,
    health,
    log_event,
    new_metrics,
)
from storage import InstanceLock, Store

log = logging.getLogger("croupier.server")

TransportChoice = Literal["auto", "console", "discord", "none"]


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
    scheduler: Scheduler
    commands: CommandSet
    # The public HTTP app's port once it listens (None when it does not).
    http_port: int | None = None


def limits_for(config: Config) -> Limits:
    return Limits(
        game_idle_seconds_default=float(config.game_idle_seconds),
        game_recovery_seconds_default=float(config.game_recovery_seconds),
        timer_attempts_max=config.timer_attempts,
    )


async def serve(
    config: Config,
    *,
    transport: TransportChoice = "auto",
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
    # The lock comes first: a second server on the same data must stop before it touches
    # anything, the metrics port included.
    with InstanceLock(config.data_dir) as lock:
        log_event(log, "lock_acquired", path=str(lock.path))
        async with trio.open_nursery() as outer:
            stop = trio.Event()
            await outer.start(_watch_signals, stop)
            if metrics_endpoint:
                await _start_metrics_endpoint(outer, config, metrics, readiness)
            else:
                log_event(log, "metrics_off", serving="nothing; set CROUPIER_METRICS_ADDR")
            # The lock is held above, so the store does not take it again.
            async with (
                _discord_port(config, transport) as discord,
                run_casino(
                    config.data_dir,
                    limits=limits_for(config),
                    metrics=metrics,
                    wall_clock=wall_clock,
                    global_scope=config.economy_scope == "global",
                    lock=False,
                    on_store_open=partial(_store_opened, readiness),
                    discord=discord,
                ) as running,
            ):
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


async def _start_metrics_endpoint(
    nursery: trio.Nursery, config: Config, metrics: Metrics, readiness: Readiness
) -> None:
    """Serve /metrics, /healthz and /readyz on CROUPIER_METRICS_ADDR in ``nursery``."""
    host, port = config.metrics_host_port
    try:
        await nursery.start(serve_ops, host, port, metrics, readiness)
    except OSError as exc:
        raise StartupError(
            f"cannot listen on {config.metrics_addr} (CROUPIER_METRICS_ADDR): "
            f"{exc.strerror}; set CROUPIER_METRICS_ADDR to a free address"
        ) from exc


def _store_opened(readiness: Readiness, store: Store) -> None:
    """The store is open and migrated (boot has not begun): say so, in the log and in
    readiness."""
    log_event(
        log,
        "store_opened",
        path=str(store.path),
        schema_version=store.schema_version,
        migrations_applied=",".join(store.migrations_applied) or "none",
    )
    readiness.set(health.STORE_OPEN, True, str(store.path))
    readiness.set(health.MIGRATIONS_DONE, True, f"schema {store.schema_version}")


@asynccontextmanager
async def _discord_port(
    config: Config, transport: TransportChoice
) -> AsyncIterator[DiscordPort | None]:
    """The REST port the scheduler acts through, on the Discord transports; None on the
    console, whose scheduler commands answer ``discord_required``."""
    if transport != "discord" or not config.discord_token:
        yield None
        return
    async with DiscordActions(config.discord_api_url, config.discord_token) as actions:
        yield actions


async def _run(
    config: Config,
    readiness: Readiness,
    running: RunningCasino,
    *,
    transport: TransportChoice,
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
        casino.scheduler,
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
    """Every command, the economy's, the games' and the scheduler's, behind the
    per-member rate limit."""
    rate_limit = RateLimit(
        refill_per_second=config.ratelimit_commands_per_minute / 60.0,
        burst_commands=config.ratelimit_burst,
    )
    game_commands, game_buttons = games_commands(casino.games, casino.economy)
    schedule_commands, schedule_buttons = scheduler_commands(casino.scheduler)
    return build_command_set(
        economy=casino.economy,
        metrics=metrics,
        rate_limit=rate_limit,
        extra_commands=(*game_commands, *schedule_commands),
        extra_buttons=(*game_buttons, *schedule_buttons),
    )


async def _serve_transport(
    services: Services,
    transport: TransportChoice,
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

            await run_discord_until(
                services.commands,
                config,
                services.metrics,
                on_connected,
                stop,
                on_ban_removed=services.scheduler.ban_lifted,
            )
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
    from bot.http.api import HttpApi, json_error_handlers
    from bot.http.dashboard import open_dashboard
    from limits import ApiLimits

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
                    timers_overdue_grace_seconds=timer_overdue_grace_seconds,
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
    *,
    on_ban_removed: Callable[[int, int], Awaitable[object]] | None = None,
) -> None:
    """Serve Discord until ``stop``; reconnect with backoff when Discord cannot be reached.

    A network failure or a dropped gateway is retried (the server goes on serving its
    metrics and reports Discord as not connected meanwhile). A refused token is not
    something waiting fixes, so it stops the server with one line.
    """
    import aiohttp
    from interactions.client.errors import LoginError

    from bot.discord_client import GatewayClosed, run_discord

    backoff = discord_connect_retry_seconds_min
    while not stop.is_set():
        try:
            await run_discord(
                commands,
                token=config.discord_token,
                api_url=config.discord_api_url,
                metrics=metrics,
                on_connected=on_connected,
                on_ban_removed=on_ban_removed,
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
        backoff = min(backoff * 2, discord_connect_retry_seconds_max)


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
