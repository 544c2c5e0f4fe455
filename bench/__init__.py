"""The benchmarks behind ``croupier bench SUITE``; ``BENCHMARKS.md`` holds their figures.

Every figure is measured on fresh stores in a temporary directory, with the same fsync'd
commits a server makes: nothing counts as done before it is durable. The in-process
suites run the domain through ``actors.casino.run_casino``, as the server does.

- ``storage`` (``bench.storage``): durable writes per second of the group-commit writer
  against one commit per write, at 1, 100 and 1,000 writers.
- ``economy`` (``bench.economy``): payments end to end through the wallet actors, closed
  loop and paced, the storage floor of the same payments with no actors, and leaderboard
  pages over a million wallets.
- ``games`` (``bench.games``): instant games and blackjack rounds per second with 1,000
  players, boot to ready over 100,000 live games, and a real console's first reply over
  a million settled games.
- ``discord`` (``bench.discord``): a real server against the fake Discord in another
  process, through the HTTP interactions endpoint and the gateway.
- ``api`` (``bench.api``): a real server's HTTP API under 100 keep-alive clients in
  another process.
- ``timers`` (``bench.timers``): the timer service's firing rate, boot to the first
  firing and the cost of adding a timer, on an empty index and one of a million timers.

``bench.measure`` holds the timed loops the suites share and ``bench.load`` fills stores
directly. Dependencies point down: the benchmarks use ``bot``, ``actors``, ``storage``
and ``metrics``; nothing there imports them, except the CLI's dispatch into ``run_bench``.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable

from bench.measure import Figures
from bench.storage import VALUE_BYTES

SUITES = ("storage", "economy", "games", "discord", "api", "timers")

NOTES = {
    "storage": (
        "durable writes per second; every write is a distinct key appended per writer "
        f"with a {VALUE_BYTES}-byte value, fsync'd before it is acknowledged "
        "(*_one_sequence: all writers append to one increasing key sequence, so a commit "
        "touches few B-tree pages and the figure shows the writer itself)"
    ),
    "economy": (
        "payments end to end through the wallet actors, each durable before it is "
        "acknowledged; a payment is 2 wallet mutations (debit, credit) and "
        "mutations_per_s counts both; latencies are per payment; busy_answers counts "
        "payments answered busy (no reply within the ask deadline, outcome unknown), "
        "which are not throughput; payment_writes_floor_mutations_per_s writes the same "
        "records with no actors, the storage ceiling of one process"
    ),
    "discord": (
        "the real server against the fake Discord in another process, HTTP endpoint then "
        "gateway; acknowledgement latencies run from when an interaction was due to be "
        "sent; a deferral counts as an acknowledgement and must then be followed up; "
        "*_server_answer_*_le are the server's own answer times, as histogram bucket bounds"
    ),
    "api": (
        "a real croupier run under 100 keep-alive HTTP clients in another process: GET of "
        "a member's balance and rank, and PATCH adding a coin with a new Idempotency-Key "
        "each (a durable change); latencies per request as the clients see them"
    ),
    "timers": (
        "the timer service on an empty index and on one of 1,000,000 pending timers: "
        "overdue timers fired per second (each removed by its handler's durable write), "
        "boot to the first firing, and the cost of adding one (in a transaction, and in "
        "its own durable commit)"
    ),
}


def _suite(suite: str) -> Callable[[bool], Figures]:
    """The suite's ``run(quick)``, imported only when it is asked for."""
    if suite == "storage":
        from bench.storage import run as run_storage

        return run_storage
    if suite == "economy":
        from bench.economy import run as run_economy

        return run_economy
    if suite == "games":
        from bench.games import run as run_games

        return run_games
    if suite == "discord":
        from bench.discord import run as run_discord

        return run_discord
    if suite == "api":
        from bench.api import run as run_api

        return run_api
    if suite == "timers":
        from bench.timers import run as run_timers

        return run_timers
    raise ValueError(f"unknown bench suite {suite!r}; use {', '.join(SUITES)}")


def run_bench(suite: str, *, as_json: bool, quick: bool) -> int:
    """Run one suite and print its figures (one JSON object with ``as_json``)."""
    run = _suite(suite)
    thresholds = gc.get_threshold()
    try:
        figures = run(quick)
    finally:
        # The suites tune the collector as the server does; give the caller its own back.
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    if as_json:
        print(json.dumps(figures, sort_keys=True))
    else:
        print(f"croupier bench {suite}{' (quick)' if quick else ''}: {NOTES.get(suite, '')}")
        for name, value in figures.items():
            print(f"  {name:<44} {value:>14,.2f}")
    return 0
