"""A stand-in Croupier server for the real-Prometheus test: /metrics under a small load.

It reads ``CROUPIER_METRICS_ADDR`` as the real server does, declares the readiness
conditions of a server with Discord configured and reports them met, then moves every
metric family a little on each tick, the way a lightly used server would: commands,
games, transfers, actors, the writer. Every label set the dashboards group by is created
up front (at zero where nothing happens), as a server does for its known commands and
kinds. It exits by itself after a lifetime bound in case its parent dies without
stopping it.
"""

from __future__ import annotations

import os
import random
import time

import trio

from bot.http.ops import serve_ops
from metrics import Metrics, Readiness, new_metrics, server_conditions

TICK_SECONDS = 0.05
LIFETIME_SECONDS_MAX = 600.0
COMMANDS = ("balance", "daily", "pay", "blackjack", "slots")
OUTCOMES = ("ok", "error", "failed")
# (game kind, bet kind) -> theoretical return.
GAMES = {("blackjack", "hand"): 0.995, ("slots", "spin"): 0.96, ("coinflip", "call"): 0.98}
ACTOR_KINDS = ("wallet", *(kind for kind, _ in GAMES))
REASONS = ("pay", "daily", "work", "admin", "shop", "game")
SCOPES = ("guild-1", "guild-2", "other")


def parse_addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def prime(metrics: Metrics) -> None:
    """Create every label set and set the slow-moving gauges of a healthy server."""
    for command in COMMANDS:
        metrics.ratelimit_rejections.labels(command)
        for outcome in OUTCOMES:
            metrics.commands.labels(command, outcome)
    for kind in ACTOR_KINDS:
        for family in (
            metrics.actor_activations,
            metrics.actor_passivations,
            metrics.mailbox_full,
            metrics.ask_timeouts,
            metrics.supervisor_restarts,
            metrics.supervisor_escalations,
        ):
            family.labels(kind)
        metrics.mailbox_messages.labels(kind).set(0)
    for (kind, bet), rtp in GAMES.items():
        metrics.games_theoretical_rtp.labels(kind, bet).set(rtp)
        metrics.games_refunded.labels(kind, "expired")
    for interaction in ("command", "button"):
        metrics.discord_interactions.labels(interaction)
    metrics.writer_requests.labels("failed")
    metrics.discord_connected.set(1)
    metrics.lmdb_map_size.set(1 << 30)
    metrics.lmdb_map_used.set(0.25)
    metrics.integrity_ok.set(1)
    metrics.integrity_violations.labels("zero_sum").set(0)
    metrics.integrity_last_run.set(time.time())
    metrics.backup_last_success.set(time.time() - 3600)


def tick(metrics: Metrics, rng: random.Random) -> None:
    """One moment of light use."""
    command = rng.choice(COMMANDS)
    metrics.commands.labels(command, "error" if rng.random() < 0.1 else "ok").inc()
    metrics.command_duration.labels(command).observe(rng.uniform(0.001, 0.05))
    metrics.discord_interactions.labels("command").inc()
    metrics.discord_latency.set(rng.uniform(0.03, 0.08))
    metrics.transfers.labels(rng.choice(REASONS)).inc()
    for scope in SCOPES:
        metrics.money_supply.labels(scope).set(1_000_000 + rng.randrange(10_000))

    kind, bet = rng.choice(tuple(GAMES))
    stake = rng.randrange(10, 100)
    metrics.games_started.labels(kind).inc()
    metrics.games_settled.labels(kind, rng.choice(("win", "loss", "push"))).inc()
    metrics.games_wagered.labels(kind, bet).inc(stake)
    metrics.games_paid_out.labels(kind, bet).inc(round(stake * rng.uniform(0.0, 2.0)))

    actor = rng.choice(ACTOR_KINDS)
    metrics.actor_activations.labels(actor).inc()
    metrics.actor_passivations.labels(actor).inc()
    metrics.actors_resident.labels(actor).set(rng.randrange(10, 50))
    metrics.writer_batch_size.observe(rng.randrange(1, 20))
    metrics.writer_commit_duration.observe(rng.uniform(0.0005, 0.005))
    metrics.writer_requests.labels("ok").inc()


async def main() -> None:
    host, port = parse_addr(os.environ.get("CROUPIER_METRICS_ADDR", "127.0.0.1:9464"))
    metrics = new_metrics(process_collectors=True)
    readiness = Readiness(metrics, server_conditions(discord=True))
    rng = random.Random(7)
    with trio.move_on_after(LIFETIME_SECONDS_MAX):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_ops, host, port, metrics, readiness)
            prime(metrics)
            for condition in server_conditions(discord=True):
                readiness.set(condition, True, "stand-in")
            while True:
                tick(metrics, rng)
                await trio.sleep(TICK_SECONDS)


if __name__ == "__main__":
    trio.run(main)
