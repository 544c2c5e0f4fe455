"""Drive console sessions over in-memory streams, for the console tests."""

from __future__ import annotations

import json
from typing import Any

import trio
import trio.testing

from bot import CommandSet
from bot.console import run_console


async def converse(
    commands: CommandSet,
    text: str | bytes,
    *,
    json_mode: bool,
    user: int = 42,
    guild: int = 1,
    admin: bool = False,
    seconds: float = 20.0,
) -> str:
    """Feed ``text`` to one console session as ``user`` in ``guild``, wait for it to end
    at end of input, and return everything it wrote."""
    send_in, reader = trio.testing.memory_stream_one_way_pair()
    writer, receive_out = trio.testing.memory_stream_one_way_pair()
    await send_in.send_all(text.encode() if isinstance(text, str) else text)
    await send_in.aclose()
    with trio.fail_after(seconds):
        await run_console(
            commands,
            reader,
            writer,
            json_mode=json_mode,
            user_id=user,
            guild_id=guild,
            admin=admin,
        )
    await writer.aclose()
    output = bytearray()
    while chunk := await receive_out.receive_some():
        output += chunk
    return output.decode()


async def ask_json(
    commands: CommandSet, *requests: dict[str, Any], user: int = 42, guild: int = 1
) -> list[dict[str, Any]]:
    """Send JSON requests to one console session as ``user`` in ``guild``; return the
    replies, one per request."""
    text = "".join(json.dumps(r) + "\n" for r in requests)
    output = await converse(commands, text, json_mode=True, user=user, guild=guild)
    replies = [json.loads(line) for line in output.splitlines()]
    assert len(replies) == len(requests)
    return replies
