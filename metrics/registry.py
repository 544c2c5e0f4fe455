"""Every metric Croupier exports, defined once.

Names follow ``croupier_<subsystem>_<name>_<unit>``; counters end in ``_total``. Labels
have bounded value sets: command names, actor and game kinds, outcomes, reasons. A user
id is never a label. The ``scope`` label of the money supply is bounded by the
``metrics_scopes_max`` limit: the largest scopes by supply are listed, the rest summed
into ``other``.
"""

from __future__ import annotations

import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

_LATENCY_BUCKETS_SECONDS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
# The ``transfer`` label of delivery failures: a transfer id's first word, else "other".
DELIVERY_TRANSFER_KINDS = ("pay", "settle", "refund", "other")
# Why a Discord interaction went unanswered: the label values of
# croupier_discord_unanswered_total (bot.discord_answers.Reason names the same).
DISCORD_UNANSWERED_REASONS = (
    "expired",
    "already_acknowledged",
    "token_expired",
    "rate_limited",
    "refused",
    "server_error",
    "network",
    "shutdown",
)
_BATCH_BUCKETS_WRITES = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)


class Metrics:
    """The metric objects, bound to one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        # One method per subsystem, so each set of declarations reads at once.
        self._declare_transports(registry)
        self._declare_runtime(registry)
        self._declare_storage(registry)
        self._declare_economy(registry)
        self._declare_games(registry)
        self._declare_timers(registry)
        self._declare_health(registry)

    def _declare_transports(self, r: CollectorRegistry) -> None:
        """Commands and the transports that carry them."""
        self.commands = Counter(
            "croupier_commands_total",
            "Commands handled, by command name and outcome (ok, error, failed).",
            ["command", "outcome"],
            registry=r,
        )
        self.command_duration = Histogram(
            "croupier_command_duration_seconds",
            "Time from receiving a command to having its reply, by command name.",
            ["command"],
            buckets=_LATENCY_BUCKETS_SECONDS,
            registry=r,
        )
        self.ratelimit_rejections = Counter(
            "croupier_ratelimit_rejections_total",
            "Commands refused by the per-user rate limit, by command name.",
            ["command"],
            registry=r,
        )
        self.discord_connected = Gauge(
            "croupier_discord_connected",
            "1 while the Discord gateway is connected and ready, else 0.",
            registry=r,
        )
        self.discord_latency = Gauge(
            "croupier_discord_gateway_latency_seconds",
            "Last measured Discord gateway heartbeat latency.",
            registry=r,
        )
        self.discord_interactions = Counter(
            "croupier_discord_interactions_total",
            "Discord interactions received, by type (command, button).",
            ["type"],
            registry=r,
        )
        self.discord_unanswered = Counter(
            "croupier_discord_unanswered_total",
            "Discord interactions whose answer Discord did not take, by reason (expired, "
            "already_acknowledged, token_expired, rate_limited, refused, server_error, "
            "network, shutdown).",
            ["reason"],
            registry=r,
        )
        # Every reason starts at 0, so the first unanswered interaction is an increase
        # (a series that appears at 1 is not one to rate() and increase()).
        for reason in DISCORD_UNANSWERED_REASONS:
            self.discord_unanswered.labels(reason=reason)
        self.discord_http_answer_duration = Histogram(
            "croupier_discord_http_answer_duration_seconds",
            "Time from a delivery reaching the HTTP interactions endpoint to its answer "
            "being handed to the HTTP server, by answer (message, deferred, refused).",
            ["answer"],
            buckets=_LATENCY_BUCKETS_SECONDS,
            registry=r,
        )
        self.asyncio_task_errors = Counter(
            "croupier_asyncio_task_errors_total",
            "Stray asyncio task errors caught by the loop exception handler.",
            registry=r,
        )

    def _declare_runtime(self, r: CollectorRegistry) -> None:
        """The actor runtime: activations, mailboxes, supervision."""
        self.actors_resident = Gauge(
            "croupier_actors_resident",
            "Actors currently activated, by kind.",
            ["kind"],
            registry=r,
        )
        self.actor_activations = Counter(
            "croupier_actor_activations_total",
            "Actor activations (state loaded from the store), by kind.",
            ["kind"],
            registry=r,
        )
        self.actor_passivations = Counter(
            "croupier_actor_passivations_total",
            "Actor passivations (idle or evicted), by kind.",
            ["kind"],
            registry=r,
        )
        self.mailbox_messages = Gauge(
            "croupier_actor_mailbox_messages",
            "Messages waiting in mailboxes, summed over the resident actors of a kind.",
            ["kind"],
            registry=r,
        )
        self.ask_timeouts = Counter(
            "croupier_actor_ask_timeouts_total",
            "Asks that passed their deadline without a reply, by kind.",
            ["kind"],
            registry=r,
        )
        self.supervisor_restarts = Counter(
            "croupier_supervisor_restarts_total",
            "Crashed actors restarted from durable state, by kind.",
            ["kind"],
            registry=r,
        )
        self.supervisor_escalations = Counter(
            "croupier_supervisor_escalations_total",
            "Actors stopped for passing their restart intensity, by kind.",
            ["kind"],
            registry=r,
        )

    def _declare_storage(self, r: CollectorRegistry) -> None:
        """Storage: the group-commit writer and the LMDB map."""
        self.writer_batch_size = Histogram(
            "croupier_writer_batch_writes",
            "Requests committed together in one LMDB write transaction.",
            buckets=_BATCH_BUCKETS_WRITES,
            registry=r,
        )
        self.writer_commit_duration = Histogram(
            "croupier_writer_commit_duration_seconds",
            "Time to apply and fsync one group commit.",
            buckets=_LATENCY_BUCKETS_SECONDS,
            registry=r,
        )
        self.writer_requests = Counter(
            "croupier_writer_requests_total",
            "Write requests by outcome (ok, failed).",
            ["outcome"],
            registry=r,
        )
        self.writer_map_growths = Counter(
            "croupier_writer_map_growths_total",
            "Times the LMDB map was grown: 'early' ahead of need, 'full' after a "
            "MapFullError (which waits for long readers while writes wait).",
            ["trigger"],
            registry=r,
        )
        # Both series exist from the start (at 0), so "no growth" is data, not a gap.
        for trigger in ("early", "full"):
            self.writer_map_growths.labels(trigger)
        self.lmdb_map_size = Gauge(
            "croupier_lmdb_map_size_bytes",
            "Configured size of the LMDB memory map.",
            registry=r,
        )
        self.lmdb_map_used = Gauge(
            "croupier_lmdb_map_used_ratio",
            "Fraction of the LMDB map in use (last page over map size).",
            registry=r,
        )

    def _declare_economy(self, r: CollectorRegistry) -> None:
        """The economy: transfers, deliveries, parked records, the money supply."""
        self.transfers = Counter(
            "croupier_economy_transfers_total",
            "Money transfers committed, by reason (open, pay, daily, work, admin, shop, game).",
            ["reason"],
            registry=r,
        )
        self.idempotency_pruned = Counter(
            "croupier_economy_idempotency_pruned_total",
            "Stored results of requests forgotten after the retention period "
            "(a key repeated after that long counts as a new request).",
            registry=r,
        )
        self.delivery_failures = Counter(
            "croupier_economy_delivery_failures_total",
            "Failed attempts to deliver a transfer in flight, by transfer kind (pay, "
            "settle, refund, other); each is retried with backoff, then parked.",
            ["transfer"],
            registry=r,
        )
        self.parked = Counter(
            "croupier_parked_records_total",
            "Records set aside because they could not be handled, by kind (transfer, "
            "game, timer); see croupier transfers list-parked and croupier check.",
            ["kind"],
            registry=r,
        )
        # The bounded label sets exist from the start, so "no failure" is data, not a gap.
        for transfer in DELIVERY_TRANSFER_KINDS:
            self.delivery_failures.labels(transfer)
        for kind in ("transfer", "game", "timer"):
            self.parked.labels(kind)
        self.parked_refunds = Counter(
            "croupier_economy_parked_refunds_total",
            "Parked transfers whose money went back to their sender.",
            registry=r,
        )
        self.money_supply = Gauge(
            "croupier_economy_money_supply_coins",
            "Coins in circulation in a scope (issued by its system accounts: held by users, "
            "in games or in flight); the largest scopes, the rest summed as 'other'.",
            ["scope"],
            registry=r,
        )

    def _declare_games(self, r: CollectorRegistry) -> None:
        """Games and the timers that end them."""
        self.games_started = Counter(
            "croupier_games_started_total", "Games started, by kind.", ["kind"], registry=r
        )
        self.games_settled = Counter(
            "croupier_games_settled_total",
            "Games settled, by kind and outcome (win, loss, push).",
            ["kind", "outcome"],
            registry=r,
        )
        self.games_refunded = Counter(
            "croupier_games_refunded_total",
            "Games refunded in full, by kind and reason (expired, escalated).",
            ["kind", "reason"],
            registry=r,
        )
        self.games_wagered = Counter(
            "croupier_games_wagered_coins_total",
            "Coins staked on settled games, by game kind and bet kind.",
            ["kind", "bet"],
            registry=r,
        )
        self.games_paid_out = Counter(
            "croupier_games_paid_out_coins_total",
            "Coins paid back to players on settled games, stake included, by game kind and "
            "bet kind.",
            ["kind", "bet"],
            registry=r,
        )
        self.games_recovery_failures = Counter(
            "croupier_games_recovery_failures_total",
            "Live games that could not be handled (their refund at boot raised, or their "
            "crashing actor's record could not be read); each is parked.",
            registry=r,
        )
        self.scheduler_dropped = Counter(
            "croupier_scheduler_dropped_total",
            "Scheduler timers that fired too late to act and were dropped by their kind's "
            "catch-up policy (a reminder 7 days late, a birthday role or announcement after "
            "the day), by timer kind.",
            ["kind"],
            registry=r,
        )
        for kind in ("birthday_grant", "birthday_announce", "reminder"):
            self.scheduler_dropped.labels(kind)
        self.games_theoretical_rtp = Gauge(
            "croupier_games_theoretical_rtp_ratio",
            "Theoretical return to player of each game kind and bet kind, from its rules "
            "(blackjack: basic strategy at an even stake).",
            ["kind", "bet"],
            registry=r,
        )

    def _declare_timers(self, r: CollectorRegistry) -> None:
        self.timer_failures = Counter(
            "croupier_timers_failures_total",
            "Timer firings whose handler raised (retried, then parked), by timer kind "
            "(a registered kind, or 'unknown').",
            ["kind"],
            registry=r,
        )
        self.timers_pending = Gauge(
            "croupier_timers_pending",
            "Timers waiting in the index, by kind (recounted every "
            "timer_pending_count_seconds, in a worker thread).",
            ["kind"],
            registry=r,
        )
        self.timers_overdue = Gauge(
            "croupier_timers_overdue",
            "Timers due more than the overdue grace ago and not fired yet (counted up to "
            "timer_overdue_counted_max).",
            registry=r,
        )
        self.timers_fired = Counter(
            "croupier_timers_fired_total",
            "Timer firings whose handler finished, by kind.",
            ["kind"],
            registry=r,
        )
        self.timers_retried = Counter(
            "croupier_timers_retried_total",
            "Timer firings put off for a retry (a failure, or Discord's retry_after), by kind.",
            ["kind"],
            registry=r,
        )
        self.timers_parked = Counter(
            "croupier_timers_parked_total",
            "Timers parked after too many failed attempts, by kind ('unknown' for records "
            "that cannot be read or have no handler).",
            ["kind"],
            registry=r,
        )
        self.timers_parked.labels("unknown")
        self.timers_guild_forbidden = Counter(
            "croupier_timers_guild_forbidden_total",
            "Times a guild's Discord timers were backed off for a missing permission "
            "(once per outage, not once per attempt).",
            registry=r,
        )
        self.timers_guilds_backed_off = Gauge(
            "croupier_timers_guilds_backed_off",
            "Guilds whose Discord timers wait for a missing permission.",
            registry=r,
        )

    def _declare_health(self, r: CollectorRegistry) -> None:
        """Integrity, backups and readiness."""
        self.integrity_ok = Gauge(
            "croupier_integrity_ok",
            "1 if the last integrity check found no violation, else 0.",
            registry=r,
        )
        self.integrity_violations = Gauge(
            "croupier_integrity_violations",
            "Violations found by the last integrity check, by check.",
            ["check"],
            registry=r,
        )
        self.integrity_last_run = Gauge(
            "croupier_integrity_last_run_timestamp_seconds",
            "Unix time the last integrity check finished.",
            registry=r,
        )
        self.backup_last_success = Gauge(
            "croupier_backup_last_success_timestamp_seconds",
            "Unix time of the newest verified backup (0 if none).",
            registry=r,
        )
        self.backup_age = Gauge(
            "croupier_backup_age_seconds",
            "Seconds since the newest good backup (+Inf if there is none).",
            registry=r,
        )
        self.backup_age.set_function(self._backup_age_seconds)
        self.ready = Gauge(
            "croupier_ready",
            "1 when the server is ready to serve (see /readyz), else 0.",
            registry=r,
        )
        self.ready_conditions = Gauge(
            "croupier_ready_condition",
            "1 while the named readiness condition holds, else 0 (see /readyz).",
            ["condition"],
            registry=r,
        )

    def _backup_age_seconds(self) -> float:
        last = float(self.backup_last_success._value.get())
        if last <= 0:
            return float("inf")
        return max(0.0, time.time() - last)


def new_metrics(*, process_collectors: bool = False) -> Metrics:
    """A fresh registry with every Croupier metric, for a server or a test."""
    registry = CollectorRegistry()
    if process_collectors:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
    return Metrics(registry)
