"""Transports, the command layer, configuration and the CLI, over the ``actors`` domain.

How the parts fit:

- The command layer: ``model`` defines commands, options, invocations and replies once,
  transport-neutral; ``dispatch``'s ``CommandSet`` is where every transport meets them
  (validation, the admin check, rate limits, answers kept per interaction, and errors
  turned into replies); ``inputs`` validates values at the boundary. ``commands/``
  holds the command sets (economy, games, scheduler, tokens) over ``actors``' APIs.
- Transports: the console (``console`` with ``console_session``, ``console_human``,
  ``console_json``); the Discord gateway client (``discord_client``,
  ``discord_handling``, ``discord_sharding``, answers by REST in ``discord_answers``,
  the scheduler's calls in ``discord_actions``); and ``http/``, one HTTP stack for the
  interactions endpoint, the HTTP API, the dashboard and the ops routes.
- ``config`` (with ``config_sources`` and ``config_checks``): the TOML file and
  ``CROUPIER_*`` variables, checked at start-up; ``server`` wires a configured server
  and ``periodic`` its background work; ``cli`` is ``croupier``, with ``admin_cli``,
  ``backup_cli`` and ``transfers_cli`` for the offline commands.

A ``/pay`` goes: transport -> ``CommandSet.invoke`` -> ``commands`` -> ``actors.Economy``
-> the wallet actors -> ``storage``'s writer and its fsync, and the reply comes back the
same way. Callers outside the package import the command layer from here.
"""

from bot.dispatch import REFUSALS, CommandSet, Refusal, error_reply, user_error
from bot.model import (
    Button,
    ButtonPress,
    ButtonRoute,
    ButtonStyle,
    Command,
    Field,
    Invocation,
    MemberRoles,
    Option,
    OptionKind,
    Reply,
    UserRef,
)

__all__ = [
    "REFUSALS",
    "Button",
    "ButtonPress",
    "ButtonRoute",
    "ButtonStyle",
    "Command",
    "CommandSet",
    "Field",
    "Invocation",
    "MemberRoles",
    "Option",
    "OptionKind",
    "Refusal",
    "Reply",
    "UserRef",
    "error_reply",
    "user_error",
]
