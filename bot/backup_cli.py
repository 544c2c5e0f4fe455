"""``croupier backup {create,list,verify,restore}``: backups from the command line.

``create`` works beside a running server: it opens the store read-only and takes a hot
copy, without the instance lock. ``restore`` needs the server stopped (it takes the
lock) and asks for confirmation unless ``--yes`` is given. Errors reach ``bot.cli`` as
``StorageError`` and become one line on stderr with exit code 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import datetime
from typing import TextIO

from actors import check_store
from bot.config import Config
from metrics.logs import StructuredFormatter
from storage import env_path, open_store_readonly
from storage.backup import (
    LATEST,
    BackupEntry,
    Progress,
    create_backup,
    find_backup,
    list_backups,
    record_verification,
    restore_backup,
    verify_backup,
)
from storage.backup import logger as backup_logger

_BAR_CELLS = 30


def add_backup_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backup = subparsers.add_parser("backup", help="create, list, verify or restore backups")
    actions = backup.add_subparsers(dest="backup_command", metavar="ACTION", required=True)
    actions.add_parser("create", help="take a hot backup now (safe while the server runs)")
    actions.add_parser("list", help="list the backups, newest first")
    verify = actions.add_parser("verify", help="check a backup's checksum, schema and integrity")
    verify.add_argument(
        "name", nargs="?", default=LATEST, help="backup name, or 'latest' (the default)"
    )
    verify.add_argument("--all", action="store_true", help="verify every backup")
    restore = actions.add_parser(
        "restore", help="replace the store with a backup (the server must be stopped)"
    )
    restore.add_argument("name", help="backup name, or 'latest'")
    restore.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def run_backup_command(args: argparse.Namespace, config: Config) -> int:
    _log_to_configured_file(config)
    command: str = args.backup_command
    if command == "create":
        return _create(config)
    if command == "list":
        return _list(config)
    if command == "verify":
        return _verify(config, name=args.name, every=args.all)
    if command == "restore":
        return _restore(config, name=args.name, confirmed=args.yes)
    raise AssertionError(command)


def _create(config: Config) -> int:
    with open_store_readonly(env_path(config.data_dir)) as store:
        entry = create_backup(store, config.backups_path, progress=_progress_bar(sys.stderr))
    print(
        f"created backup {entry.name} in {entry.directory} ({entry.size_bytes} bytes, "
        f"schema {entry.schema_version}, sha256 {entry.sha256})"
    )
    return 0


def _list(config: Config) -> int:
    entries = list_backups(config.backups_path)
    if not entries:
        print(f"no backups in {config.backups_path}")
        return 0
    print(f"{'NAME':<20} {'CREATED (local)':<19} {'BYTES':>12} {'SCHEMA':>6}  VERIFIED")
    for entry in entries:
        print(
            f"{entry.name:<20} {_local_time(entry.created_at):<19} {entry.size_bytes:>12} "
            f"{entry.schema_version:>6}  {_verified_text(entry)}"
        )
    return 0


def _verify(config: Config, *, name: str, every: bool) -> int:
    entries = (
        list_backups(config.backups_path) if every else [find_backup(config.backups_path, name)]
    )
    if not entries:
        print(f"croupier: no backups in {config.backups_path} to verify", file=sys.stderr)
        return 1
    failed: list[str] = []
    for entry in entries:
        result = verify_backup(entry, integrity=check_store, progress=_progress_bar(sys.stderr))
        record_verification(config.backups_path, result, now=time.time())
        print(f"{entry.name}: {result.summary()}")
        if result.integrity_text is not None and not result.ok:
            print(result.integrity_text)
        if not result.ok:
            failed.append(f"{entry.name} ({result.summary()})")
    if failed:
        print(f"croupier: backup failed verification: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _restore(config: Config, *, name: str, confirmed: bool) -> int:
    entry = find_backup(config.backups_path, name)
    if not confirmed:
        if not sys.stdin.isatty():
            print(
                "croupier: restore replaces the store and needs confirmation; "
                "run it in a terminal or pass --yes",
                file=sys.stderr,
            )
            return 1
        if not _confirm(entry, config):
            print("restore cancelled; nothing was changed")
            return 1
    replaced = restore_backup(config.data_dir, entry, progress=_progress_bar(sys.stderr))
    where = f"the previous store is in {replaced}" if replaced else "there was no store before"
    print(f"restored backup {entry.name} into {env_path(config.data_dir)}; {where}")
    return 0


def _confirm(entry: BackupEntry, config: Config) -> bool:
    answer = input(
        f"Restore backup {entry.name} (taken {_local_time(entry.created_at)}, "
        f"{entry.size_bytes} bytes) into {config.data_dir}? The current store is moved "
        f"aside, not deleted. Type 'yes' to go on: "
    )
    return answer.strip().lower() == "yes"


def _local_time(when: float) -> str:
    return datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M:%S")


def _verified_text(entry: BackupEntry) -> str:
    if entry.verified_at is None:
        return "never"
    outcome = "ok" if entry.verified_ok else "FAILED"
    return f"{outcome} {_local_time(entry.verified_at)}"


def _progress_bar(stream: TextIO) -> Progress | None:
    """A one-line bar redrawn in place, only for a terminal (logs and pipes get none)."""
    if not stream.isatty():
        return None
    shown = -1

    def draw(done: int, total: int) -> None:
        nonlocal shown
        percent = 100 * done // total if total else 100
        if percent == shown:
            return
        shown = percent
        cells = _BAR_CELLS * percent // 100
        bar = "#" * cells + " " * (_BAR_CELLS - cells)
        stream.write(f"\r[{bar}] {percent:3d}% {done / 1e6:,.1f} of {total / 1e6:,.1f} MB")
        if percent == 100:
            stream.write("\n")
        stream.flush()

    return draw


def _log_to_configured_file(config: Config) -> None:
    """Send backup events to the configured log file, as the server would.

    The command's own output is the record on the terminal, so without a log file the
    events are dropped rather than repeated on stderr.
    """
    backup_logger.propagate = False
    if not config.log_file:
        backup_logger.addHandler(logging.NullHandler())
        return
    handler = logging.FileHandler(config.log_file, encoding="utf-8")
    handler.setFormatter(StructuredFormatter(json=config.log_json))
    backup_logger.addHandler(handler)
    backup_logger.setLevel(logging.INFO)
