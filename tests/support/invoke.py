"""Send commands and button presses straight to a ``CommandSet``, as a transport would,
and read their replies."""

from __future__ import annotations

import itertools
from typing import Any

from bot import ButtonPress, CommandSet, Invocation, Reply

# Generated interaction ids start high so they never meet the small ids tests choose.
_ids = itertools.count(1_000_000)


async def run(
    commands: CommandSet,
    command: str,
    *,
    by: int = 42,
    admin: bool = False,
    guild: int = 1,
    interaction: int | None = None,
    **options: Any,
) -> Reply:
    """Invoke ``command`` as user ``by``; ``interaction`` repeats a delivery when given."""
    return await commands.invoke(
        Invocation(
            command=command,
            interaction_id=next(_ids) if interaction is None else interaction,
            user_id=by,
            guild_id=guild,
            can_manage_guild=admin,
            options=options,
        )
    )


async def press(commands: CommandSet, custom_id: str, *, by: int = 42, guild: int = 1) -> Reply:
    """Press the button ``custom_id`` as user ``by``."""
    return await commands.press(
        ButtonPress(custom_id=custom_id, interaction_id=next(_ids), user_id=by, guild_id=guild)
    )


def ok(reply: Reply) -> dict[str, Any]:
    """The result of a reply that must have succeeded."""
    assert reply.error_code is None, (reply.error_code, reply.description)
    assert not reply.ephemeral
    return dict(reply.result)


def refused(reply: Reply) -> str:
    """The error code of a reply that must have been refused: ephemerally, and with no
    buttons to press."""
    assert reply.error_code is not None, reply
    assert reply.ephemeral and not reply.buttons
    return reply.error_code
