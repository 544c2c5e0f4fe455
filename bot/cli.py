"""The ``croupier`` command line."""

from __future__ import annotations

import argparse
import os
import signal
import stat
import sys
from collections.abc import Sequence
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from bot.config import Config, ConfigError, check_dashboard, ensure_paths, load_config
from limits import process_name_chars_max
from storage import InstanceLockedError, SchemaTooNewError, StorageError


def _version() -> str:
    try:
        return version("croupier")
    except PackageNotFoundError:
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="croupier",
        description="Croupier: an economy and casino server for Discord communities.",
    )
    parser.add_argument("--version", action="version", version=f"croupier {_version()}")
    parser.add_argument("--config", help="TOML configuration file (or CROUPIER_CONFIG)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    commands.add_parser(
        "run", help="run the server: Discord if a token is configured, else the console"
    )
    console = commands.add_parser("console", help="run the server with the console transport")
    console.add_argument(
        "--json", action="store_true", help="one JSON request per line in, one JSON reply out"
    )
    commands.add_parser("migrate", help="apply pending schema migrations and exit")

    check = commands.add_parser("check", help="run the integrity check; non-zero on a violation")
    check.add_argument("--json", action="store_true", help="print the report as JSON")

    bench = commands.add_parser("bench", help="run a benchmark and print its figures")
    bench.add_argument("suite", choices=["storage", "economy", "games", "discord", "api", "timers"])
    bench.add_argument("--json", action="store_true", help="print one JSON object of figures")
    bench.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")

    from bot.backup_cli import add_backup_parser

    add_backup_parser(commands)
    from bot.transfers_cli import add_transfers_parser

    add_transfers_parser(commands)
    return parser


# The exit status of a process ended by SIGPIPE, which is what a shell shows for any Unix
# tool whose reader went away (`yes | head -1`).
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


def main(argv: Sequence[str] | None = None) -> int:
    _fill_closed_standard_streams()
    # Output is flushed here, not at interpreter exit, so that a reader that went away is
    # seen as a BrokenPipeError below instead of an "Exception ignored" message.
    try:
        try:
            code = _main(argv)
        except SystemExit:
            sys.stdout.flush()
            raise
        sys.stdout.flush()
        return code
    except BaseException as exc:
        if _find(exc, BrokenPipeError) is None:
            raise
        # The reader of the output left (`croupier check | head -1`): end quietly, as a
        # Unix tool does. Standard output is pointed at /dev/null so that the flush at
        # exit has nowhere left to fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        return _dispatch(args, config)
    except ConfigError as exc:
        print(f"croupier: configuration error: {exc}", file=sys.stderr)
        return 2
    except BaseException as exc:
        # Errors from inside the server's nurseries arrive wrapped in exception groups;
        # an operating error is shown as its one line, anything else is a crash. A Ctrl-C
        # before the server takes over the signals (or in a tool without a server) is an
        # interrupted start, not a crash.
        if _only_interrupts(exc):
            return 130
        known = _operating_error(exc)
        if known is None:
            raise
        print(f"croupier: {_explain(known)}", file=sys.stderr)
        return 1


def _only_interrupts(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_interrupts(inner) for inner in exc.exceptions)
    return isinstance(exc, KeyboardInterrupt)


def _explain(exc: BaseException) -> str:
    """The error's line, with what to do when another process holds the data dir."""
    if not isinstance(exc, InstanceLockedError):
        return str(exc)
    holder = "another process"
    if exc.holder_pid is not None:
        name = _process_name(exc.holder_pid)
        holder = f"pid {exc.holder_pid}" + (f" ({name})" if name else "")
    return (
        f"data directory {exc.path} is in use by {holder}; stop it first, or set "
        "CROUPIER_DATA_DIR to another directory for this command"
    )


def _process_name(pid: int) -> str:
    """``croupier run`` for a pid, from /proc where there is one; empty when unknown."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    words = [word.decode(errors="replace") for word in raw.split(b"\0") if word]
    if len(words) > 1 and Path(words[0]).name.startswith("python"):
        words = words[1:]
    if words:
        words[0] = Path(words[0]).name
    return " ".join(words)[:process_name_chars_max]


def _operating_error(exc: BaseException) -> BaseException | None:
    from bot.server import StartupError

    return _find(exc, (InstanceLockedError, SchemaTooNewError, StorageError, StartupError))


def _find(
    exc: BaseException, kinds: type[BaseException] | tuple[type[BaseException], ...]
) -> BaseException | None:
    """``exc`` or the first exception of ``kinds`` inside it (trio's nurseries wrap
    errors in exception groups)."""
    if isinstance(exc, kinds):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find(inner, kinds)
            if found is not None:
                return found
    return None


def _fill_closed_standard_streams() -> None:
    """Put /dev/null on a closed stdin, stdout or stderr.

    A process started with one of them closed hands that number to the next file it
    opens, the lock file or the store, and the console would then read or write it.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def _input_has_an_end() -> bool:
    """Whether `croupier run` stops at /quit or at the end of its standard input.

    A terminal (someone typing /quit), a pipe or a file (a script) ends when its user is
    done. /dev/null, another device or a closed input (which became /dev/null at start)
    is what a service manager gives a server, whose input ends at once: then `run` keeps
    serving until SIGINT or SIGTERM.
    """
    return os.isatty(0) or not stat.S_ISCHR(os.fstat(0).st_mode)


def _dispatch(args: argparse.Namespace, config: Config) -> int:
    if args.command in ("run", "console"):
        import trio

        from bot.server import TransportChoice, serve

        ensure_paths(config)
        check_dashboard(config)
        transport: TransportChoice = "auto" if args.command == "run" else "console"
        # The server receives SIGINT and SIGTERM from before boot until its store is
        # closed. Outside that (its first milliseconds, the shutdown of its HTTP
        # listeners, the release of the lock, the interpreter's exit) one would raise
        # KeyboardInterrupt in the middle of the teardown or kill the process, so there
        # they are ignored.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
        trio.run(
            partial(
                serve,
                config,
                transport=transport,
                console_json=getattr(args, "json", False),
                exit_on_eof=args.command == "console" or _input_has_an_end(),
                # `croupier console` is a tool that runs beside a server: it listens on the
                # metrics address only when one is configured, so it never fights the
                # server for the default port.
                metrics_endpoint=args.command == "run" or config.is_set("metrics_addr"),
                # The public HTTP app (the API) is the server's; a console beside a
                # running server must not take its port.
                public_http=args.command == "run",
            )
        )
        return 0
    if args.command == "migrate":
        from bot.admin_cli import run_migrate

        return run_migrate(config)
    if args.command == "check":
        from bot.admin_cli import run_check

        return run_check(config, as_json=args.json)
    if args.command == "bench":
        from bench import run_bench

        return run_bench(args.suite, as_json=args.json, quick=args.quick)
    if args.command == "backup":
        from bot.backup_cli import run_backup_command

        return run_backup_command(args, config)
    if args.command == "transfers":
        from bot.transfers_cli import run_transfers_command

        return run_transfers_command(args, config)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
