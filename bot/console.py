"""The console transport: every command without Discord, for people and for scripts.

Human mode reads lines typed as in Discord (``/pay user:43 amount:50 reason:"a b"``) and
prints replies as text, with buttons as numbered choices. JSON mode (``--json``) reads one
JSON request per line and writes one JSON reply per line; ``bot/CONSOLE.md`` documents
that format, which scripts rely on, so it only ever grows compatibly.

Both modes run lines one at a time, in order, through the same ``CommandSet`` the Discord
transport uses, so a console session exercises the exact checks and handlers of the bot.

This module reads the lines and hands each to its mode: ``bot.console_human`` or
``bot.console_json``, over the session of ``bot.console_session``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from bot.console_human import prompt, serve_human
from bot.console_json import dump_json, serve_json
from bot.console_session import BadRequest, ConsoleSession, InteractionIds
from bot.dispatch import CommandSet
from limits import (
    console_line_bytes_max,
    console_receive_bytes_max,
)


async def run_console(
    commands: CommandSet,
    reader: trio.abc.ReceiveStream,
    writer: trio.abc.SendStream,
    *,
    json_mode: bool,
    user_id: int,
    guild_id: int,
    admin: bool,
    stop: trio.Event | None = None,
) -> None:
    """Serve ``commands`` on a line stream until end of input, ``/quit`` or ``stop``.

    ``stop`` (a signal) ends the session between lines: the line being served finishes
    and its reply is written, and no further line is read.
    """
    session = ConsoleSession(commands, writer, user_id, guild_id, admin, InteractionIds())
    if not json_mode:
        await session.write("Croupier console. Type /help for the commands, /quit to leave.\n")
        await session.write(prompt(session))
    async for line in _lines(reader, stop):
        if json_mode:
            if isinstance(line, str) and not line.strip():
                continue
            await session.write(dump_json(await serve_json(session, line)) + "\n")
            continue
        if not await serve_human(session, line):
            return
        await session.write(prompt(session))
    if not json_mode and stop is not None and stop.is_set():
        # Interrupted at the prompt: end its line so the shell's prompt starts clean.
        await session.write("\n")


async def run_console_stdio(
    commands: CommandSet,
    *,
    json_mode: bool,
    user_id: int,
    guild_id: int,
    admin: bool,
    stop: trio.Event | None = None,
) -> None:
    """``run_console`` on this process's standard input and output."""
    async with _stdio() as (reader, writer):
        await run_console(
            commands,
            reader,
            writer,
            json_mode=json_mode,
            user_id=user_id,
            guild_id=guild_id,
            admin=admin,
            stop=stop,
        )


@asynccontextmanager
async def _stdio() -> AsyncIterator[tuple[trio.lowlevel.FdStream, trio.lowlevel.FdStream]]:
    # FdStream makes the file non-blocking, and that flag belongs to the open file that
    # a terminal shares with the shell, so the original modes are put back on the way out.
    blocking = os.get_blocking(0), os.get_blocking(1)
    reader = trio.lowlevel.FdStream(os.dup(0))
    writer = trio.lowlevel.FdStream(os.dup(1))
    try:
        yield reader, writer
    finally:
        await reader.aclose()
        await writer.aclose()
        os.set_blocking(0, blocking[0])
        os.set_blocking(1, blocking[1])


async def _lines(
    reader: trio.abc.ReceiveStream, stop: trio.Event | None = None
) -> AsyncIterator[str | BadRequest]:
    """Yield each input line without its end, or a ``BadRequest`` for a line that is too
    long or not UTF-8. A last line without a newline still counts. Once ``stop`` is set
    no further line is yielded, even one already read."""
    buffer = bytearray()
    overlong = False
    while True:
        chunk = await _receive(reader, stop)
        if not chunk:
            break
        buffer += chunk
        while (end := buffer.find(b"\n")) >= 0:
            if stop is not None and stop.is_set():
                return
            raw = bytes(buffer[:end])
            del buffer[: end + 1]
            if overlong:
                overlong = False
                yield BadRequest(f"line longer than {console_line_bytes_max} bytes")
            else:
                yield _decode(raw)
        if len(buffer) > console_line_bytes_max:
            overlong = True
            buffer.clear()
    if stop is not None and stop.is_set():
        return
    if overlong:
        yield BadRequest(f"line longer than {console_line_bytes_max} bytes")
    elif buffer:
        yield _decode(bytes(buffer))


async def _receive(reader: trio.abc.ReceiveStream, stop: trio.Event | None) -> bytes | bytearray:
    """The next chunk of input, or nothing (as at end of input) once ``stop`` is set."""
    if stop is None:
        return await reader.receive_some(console_receive_bytes_max)
    received: bytes | bytearray = b""
    async with trio.open_nursery() as race:

        async def read() -> None:
            nonlocal received
            received = await reader.receive_some(console_receive_bytes_max)
            race.cancel_scope.cancel()

        race.start_soon(read)
        await stop.wait()
        race.cancel_scope.cancel()
    return received


def _decode(raw: bytes) -> str | BadRequest:
    if len(raw) > console_line_bytes_max:
        return BadRequest(f"line longer than {console_line_bytes_max} bytes")
    try:
        return raw.decode().rstrip("\r")
    except UnicodeDecodeError as err:
        return BadRequest(f"line is not UTF-8: {err.reason} at byte {err.start}")
