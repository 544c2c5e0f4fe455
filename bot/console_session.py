"""A console session: its commands, its output, who it acts as, and its interaction ids.

Both console modes (``console_human``, ``console_json``) serve lines over one
``ConsoleSession``; a line that cannot be understood is a ``BadRequest``, answered by either
mode in its own shape. Both read an option's kind from the command the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import trio

from bot.dispatch import CommandSet
from bot.model import Command, OptionKind, Reply

# Discord's epoch; console interaction ids are laid out like Discord snowflakes
# (milliseconds since it, shifted left 22 bits) so they are unique across runs too: an
# interaction id is an idempotency key in the store, and a restarted console must never
# reuse one.
_discord_epoch_ms = 1_420_070_400_000
_snowflake_sequence_bits = 22


class BadRequest(Exception):
    """A console line that could not be understood; the message says what was wrong."""


class InteractionIds:
    """Fresh interaction ids: increasing, shaped like Discord snowflakes.

    Every session of one process draws from the same sequence: two sessions opened in
    the same millisecond must not issue the same id, which the store would take as one
    request sent twice (and refuse the second as ``id_reused``)."""

    _last = 0

    def next(self) -> int:
        now = (time.time_ns() // 1_000_000 - _discord_epoch_ms) << _snowflake_sequence_bits
        InteractionIds._last = max(InteractionIds._last + 1, now)
        return InteractionIds._last


@dataclass
class ConsoleSession:
    commands: CommandSet
    writer: trio.abc.SendStream
    user_id: int
    guild_id: int
    admin: bool
    ids: InteractionIds
    # The buttons of the last non-ephemeral reply; typing a number presses one of them.
    last_reply: Reply | None = None

    async def write(self, text: str) -> None:
        await self.writer.send_all(text.encode())


def option_kind(command: Command | None, name: str) -> OptionKind | None:
    if command is None:
        return None
    return next((option.kind for option in command.options if option.name == name), None)
