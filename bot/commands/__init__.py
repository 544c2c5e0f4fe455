"""The server's command set: the economy's commands plus whatever else is passed in.

``build_command_set`` is the one place transports get their ``CommandSet`` from; the
games' commands and button routes arrive as ``extra_commands`` and ``extra_buttons``.
"""

from __future__ import annotations

from collections.abc import Iterable

from actors import AnswerLog, ApiTokens, AuditLog, Economy
from bot.commands.api_tokens import ApiTokenCommands
from bot.commands.common import NotYourButton
from bot.commands.economy import EconomyCommands
from bot.commands.wallet import RewardCooldown
from bot.dispatch import CommandSet
from bot.model import ButtonRoute, Command
from limits import RateLimit
from metrics import Metrics

__all__ = ["EconomyCommands", "NotYourButton", "RewardCooldown", "build_command_set"]


def build_command_set(
    *,
    economy: Economy,
    metrics: Metrics,
    rate_limit: RateLimit | None,
    extra_commands: Iterable[Command] = (),
    extra_buttons: Iterable[ButtonRoute] = (),
) -> CommandSet:
    """Every command and button route of the server, behind one dispatcher that keeps
    each interaction's first answer in the economy's store."""
    audit = AuditLog(economy.store, economy.context.now)
    economy_commands = EconomyCommands(economy, audit)
    token_commands = ApiTokenCommands(ApiTokens(economy.store, economy.context.now), audit)
    return CommandSet(
        [*economy_commands.commands(), *token_commands.commands(), *extra_commands],
        [*economy_commands.buttons(), *extra_buttons],
        metrics=metrics,
        rate_limit=rate_limit,
        answers=AnswerLog(economy.store, economy.context.now),
    )
