"""The actor runtime and the domain: wallets, the economy, games, timers, the scheduler.

How the parts fit, from the bottom up:

- ``runtime``: the actor system (bounded mailboxes, activation, passivation, one-for-one
  supervision); ``failures``: why a message got no reply (``RuntimeFailure``).
- ``errors``: the typed errors users see, each with a stable ``code``; the catalogue
  callers import refusals from.
- The wallet: ``wallet_actor`` (one actor per user and scope) applies the plain
  functions of ``wallet_plans`` to the records of ``records``, one commit per batch;
  ``wallet`` holds its messages and results; ``shop`` the shared catalogue.
- ``economy``: ``Economy``, the one entry for money (balances, pay, rewards, the shop,
  admin changes); ``delivery`` moves cross-wallet transfers through the outbox and parks
  (``parked``) what cannot be delivered. ``accounts`` and ``keys`` spell accounts and
  store keys once; ``context`` is what the economy and the games share.
- ``games``: the casino (its own front door); ``scheduler``: tempbans, birthdays and
  reminders; ``timers``: the durable timers both run on; ``discord_port``: the calls the
  scheduler makes to Discord.
- ``answers``, ``audit``, ``api_tokens``: stored interaction answers, the audit log and
  the HTTP API's tokens; ``integrity``: the one check that money sums to zero.
- ``casino``: ``run_casino`` opens, boots and closes all of it over one store.

Callers outside the package import from here (and refusals from ``actors.errors``). The
names load on first use, so importing one part (``actors.timers``, say) does not load
the others: a part depends only on what it imports itself.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from actors.answers import AnswerLog, KeyedAnswers
    from actors.api_tokens import SCOPES, ApiToken, ApiTokens
    from actors.audit import AuditLog
    from actors.casino import Casino, RunningCasino, run_casino, tune_gc
    from actors.discord_port import DiscordPort
    from actors.economy import Economy, LeaderboardRow
    from actors.errors import CroupierError
    from actors.failures import ActorCrashed, ActorStopped, AskTimeout, RuntimeFailure
    from actors.integrity import IntegrityReport, check_store
    from actors.parked import PARKED_KINDS, ParkedRecord, list_parked
    from actors.records import HistoryEntry, ScopeSettings, ShopItem
    from actors.runtime import Actor, ActorKind, ActorRef, ActorSystem
    from actors.timer_records import TimerRecord
    from actors.timers import TimerService

# Where each name of the front door lives; ``__getattr__`` imports it from there.
_HOMES = {
    "Actor": "actors.runtime",
    "ActorCrashed": "actors.failures",
    "ActorKind": "actors.runtime",
    "ActorRef": "actors.runtime",
    "ActorStopped": "actors.failures",
    "ActorSystem": "actors.runtime",
    "AnswerLog": "actors.answers",
    "ApiToken": "actors.api_tokens",
    "ApiTokens": "actors.api_tokens",
    "AskTimeout": "actors.failures",
    "AuditLog": "actors.audit",
    "Casino": "actors.casino",
    "CroupierError": "actors.errors",
    "DiscordPort": "actors.discord_port",
    "Economy": "actors.economy",
    "HistoryEntry": "actors.records",
    "IntegrityReport": "actors.integrity",
    "KeyedAnswers": "actors.answers",
    "LeaderboardRow": "actors.economy",
    "PARKED_KINDS": "actors.parked",
    "ParkedRecord": "actors.parked",
    "RunningCasino": "actors.casino",
    "RuntimeFailure": "actors.failures",
    "SCOPES": "actors.api_tokens",
    "ScopeSettings": "actors.records",
    "ShopItem": "actors.records",
    "TimerRecord": "actors.timer_records",
    "TimerService": "actors.timers",
    "check_store": "actors.integrity",
    "list_parked": "actors.parked",
    "run_casino": "actors.casino",
    "tune_gc": "actors.casino",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'actors' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


__all__ = [
    "PARKED_KINDS",
    "SCOPES",
    "Actor",
    "ActorCrashed",
    "ActorKind",
    "ActorRef",
    "ActorStopped",
    "ActorSystem",
    "AnswerLog",
    "ApiToken",
    "ApiTokens",
    "AskTimeout",
    "AuditLog",
    "Casino",
    "CroupierError",
    "DiscordPort",
    "Economy",
    "HistoryEntry",
    "IntegrityReport",
    "KeyedAnswers",
    "LeaderboardRow",
    "ParkedRecord",
    "RunningCasino",
    "RuntimeFailure",
    "ScopeSettings",
    "ShopItem",
    "TimerRecord",
    "TimerService",
    "check_store",
    "list_parked",
    "run_casino",
    "tune_gc",
]
