"""Checks of a whole configuration, and the one line an invalid one is reported in.

Each key is validated on its own by the model (``bot.config``); the rules here tie keys
together (``check_together``, ``check_dashboard``), prove that the directories and the
log file can be written before the server takes a request (``ensure_paths``), and turn
pydantic's report into ``CROUPIER_X / x: expected ..., got ...`` with secrets hidden.
"""

from __future__ import annotations

import math
import os
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from bot.config_sources import ConfigError, label
from limits import shown_value_chars_max

if TYPE_CHECKING:
    from bot.config import Config

# Keys whose refused values an error line must not repeat.
SECRET_KEYS = frozenset({"discord_token", "discord_client_secret", "session_secret"})


def check_together(config: Config) -> None:
    """Rules that tie keys together, each valid on its own."""
    if not config.interactions_addr and not config.discord_gateway:
        raise ConfigError(
            f"{label('discord_gateway')}: expected true unless the HTTP endpoint is on "
            "(CROUPIER_INTERACTIONS_ADDR), got false"
        )
    ids, count = config.discord_shard_id_list, config.discord_shard_count
    if ids is not None and count is None:
        raise ConfigError(
            f"{label('discord_shard_ids')}: expected empty unless "
            f"{label('discord_shards')} is a number (every process must agree on the "
            f"total), got {shown_setting(config.discord_shard_ids)}"
        )
    if ids is not None and count is not None and (max(ids) >= count or len(set(ids)) < len(ids)):
        raise ConfigError(
            f"{label('discord_shard_ids')}: expected distinct shard ids below "
            f"{label('discord_shards')} = {count}, got {shown_setting(config.discord_shard_ids)}"
        )
    if config.interactions_addr and not config.discord_public_key:
        raise ConfigError(
            f"{label('discord_public_key')}: expected "
            f"{_expected(type(config), 'discord_public_key')} "
            "when the interactions endpoint is on, got ''"
        )


def check_dashboard(config: Config) -> None:
    """The keys the dashboard needs once it is on; checked when the server starts it, so
    each key stays valid on its own."""
    if not config.dashboard_enabled:
        return
    for key in ("discord_client_secret", "dashboard_url", "session_secret", "discord_token"):
        if not getattr(config, key):
            raise ConfigError(
                f"{label(key)}: expected a value when the dashboard is on "
                "(CROUPIER_DISCORD_CLIENT_ID is set), got ''"
            )


def one_line(error: ValidationError, model: type[Config]) -> str:
    """pydantic's report, one entry per failed check, as one line for the first bad key."""
    order = list(model.model_fields)
    details = error.errors(include_url=False)
    keys = sorted({str(d["loc"][0]) for d in details}, key=lambda k: order.index(k))
    key = keys[0]
    first = next(d for d in details if d["loc"][0] == key)
    got = _hidden(first["input"]) if key in SECRET_KEYS else shown_setting(first["input"])
    line = f"{label(key)}: expected {_expected(model, key)}, got {got}"
    if len(keys) > 1:
        line += f" (also invalid: {', '.join(keys[1:])})"
    return line


def _expected(model: type[Config], key: str) -> str:
    description = model.model_fields[key].description
    assert description is not None, f"config key {key} has no description"
    return description


def _hidden(value: object) -> str:
    """A refused secret, described without its text: error lines end up in logs."""
    if isinstance(value, str):
        return f"{len(value)} characters (not shown)"
    return f"a TOML {type(value).__name__} (not shown)"


def shown_setting(value: object) -> str:
    """The refused value, named by its TOML type where its text would not help."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int) and value.bit_length() > 64:
        # str() of a long enough int raises, so its length is reckoned from its bits.
        return f"a number of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    if isinstance(value, (datetime, date, time)):
        return f"a TOML date/time ({value.isoformat()})"
    text = repr(value)
    if len(text) > shown_value_chars_max:
        text = text[: shown_value_chars_max - 3] + "..."
    return text


def ensure_paths(config: Config) -> None:
    """Create the data and backup directories if needed and prove that they take a file
    and that the log file opens, or raise one line naming the key.

    A server that finds out only at its first commit, backup or log line that it cannot
    write has already started taking requests; checking here makes it a configuration
    error instead.
    """
    _ensure_directory("data_dir", config.data_dir)
    _ensure_directory("backup_dir", config.backups_path)
    if config.log_file:
        try:
            with open(config.log_file, "a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise ConfigError(
                f"{label('log_file')}: expected a file this process can append to, "
                f"got {config.log_file!r} ({exc.strerror})"
            ) from exc


def _ensure_directory(key: str, path: Path) -> None:
    def refuse(why: str) -> ConfigError:
        return ConfigError(
            f"{label(key)}: expected a directory this process can create and "
            f"write, got {str(path)!r} ({why})"
        )

    if path.exists() and not path.is_dir():
        raise refuse("not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise refuse(f"cannot create it: {exc.strerror}") from exc
    probe = path / f".croupier-write-probe-{os.getpid()}"
    try:
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as exc:
        raise refuse(f"cannot write a file in it: {exc.strerror}") from exc
