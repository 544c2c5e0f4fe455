"""The ``croupier`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial
from importlib.metadata import PackageNotFoundError, version

from bot.config import Config, ConfigError, ensure_data_dir, load_config
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
    bench.add_argument("suite", choices=["storage", "economy", "games"])
    bench.add_argument("--json", action="store_true", help="print one JSON object of figures")
    bench.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")

    from bot.backup_cli import add_backup_parser

    add_backup_parser(commands)
    from bot.transfers_cli import add_transfers_parser

    add_transfers_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        return _dispatch(args, config)
    except ConfigError as exc:
        print(f"croupier: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BaseException as exc:
        # Errors from inside the server's nurseries arrive wrapped in exception groups;
        # an operating error is shown as its one line, anything else is a crash.
        known = _operating_error(exc)
        if known is None:
            raise
        print(f"croupier: {known}", file=sys.stderr)
        return 1


def _operating_error(exc: BaseException) -> BaseException | None:
    from bot.server import StartupError

    if isinstance(exc, (InstanceLockedError, SchemaTooNewError, StorageError, StartupError)):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _operating_error(inner)
            if found is not None:
                return found
    return None


def _dispatch(args: argparse.Namespace, config: Config) -> int:
    if args.command in ("run", "console"):
        import trio

        from bot.server import Transport, serve

        ensure_data_dir(config)
        transport: Transport = "auto" if args.command == "run" else "console"
        trio.run(
            partial(
                serve,
                config,
                transport=transport,
                console_json=getattr(args, "json", False),
                # A person at a terminal who types /quit means it; under a service
                # manager (input closed or not a terminal) `run` keeps serving.
                exit_on_eof=args.command == "console" or sys.stdin.isatty(),
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
        from bot.bench import run_bench

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
