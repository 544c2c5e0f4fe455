"""Drive a console session in JSON mode over in-memory streams, for the console tests."""

from __future__ import annotations

import json
from typing import Any

import trio
import trio.testing

from bot.console import run_console
from bot.dispatch import CommandSet


async def ask_json(
    commands: CommandSet, *requests: dict[str, Any], user: int = 42, guild: int = 1
) -> list[dict[str, Any]]:
    """Send JSON requests to one console session as ``user`` in ``guild``; return the
    replies, one per request."""
    send_in, reader = trio.testing.memory_stream_one_way_pair()
    writer, receive_out = trio.testing.memory_stream_one_way_pair()
    await send_in.send_all("".join(json.dumps(r) + "\n" for r in requests).encode())
    await send_in.aclose()
    with trio.fail_after(20):
        await run_console(
            commands, reader, writer, json_mode=True, user_id=user, guild_id=guild, admin=False
        )
    await writer.aclose()
    output = bytearray()
    while chunk := await receive_out.receive_some():
        output += chunk
    replies = [json.loads(line) for line in output.decode().splitlines()]
    assert len(replies) == len(requests)
    return replies
