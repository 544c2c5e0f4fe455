"""The toy bank on the real console (this process's stdin and stdout), for subprocess tests.

Run as ``python -m tests.toy_console [--json]``.
"""

from __future__ import annotations

import sys

import trio

from bot.console import run_console_stdio
from metrics import new_metrics
from tests.toy_commands import ToyBank


async def main(json_mode: bool) -> None:
    commands = ToyBank().command_set(new_metrics())
    await run_console_stdio(commands, json_mode=json_mode, user_id=42, guild_id=1, admin=False)


if __name__ == "__main__":
    trio.run(main, "--json" in sys.argv[1:])
