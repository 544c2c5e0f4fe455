"""Configuration: a TOML file plus ``CROUPIER_*`` environment variables.

Precedence: environment over file over defaults. Every value is checked at load time, and
an invalid one stops start-up with one ``ConfigError`` line naming the key and the fix.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DISCORD_API_URL_DEFAULT = "https://discord.com/api/v10"
ENV_PREFIX = "CROUPIER_"


class ConfigError(Exception):
    """A configuration value is invalid; the message names the key."""


@dataclass(frozen=True)
class Config:
    data_dir: Path = Path("data")
    discord_token: str = ""
    discord_api_url: str = DISCORD_API_URL_DEFAULT
    metrics_addr: str = "127.0.0.1:9464"
    economy_scope: str = "guild"
    log_level: str = "info"
    log_file: str = ""
    log_json: bool = False
    backup_dir: Path | None = None
    backup_time: str = "03:00"
    backup_keep_days: int = 7
    integrity_interval_seconds: int = 3600
    game_idle_seconds: int = 300
    game_recovery_seconds: int = 7200
    ratelimit_commands_per_minute: int = 30
    ratelimit_burst: int = 10
    console_user: int = 1
    console_guild: int = 1
    console_admin: bool = True
    # Discord's HTTP interactions endpoint: host:port to serve POST /interactions on
    # (off when empty), the application's public key (hex) that signs deliveries, and
    # whether to connect the gateway too (with the endpoint on, it is optional).
    interactions_addr: str = ""
    discord_public_key: str = ""
    discord_gateway: bool = True

    @property
    def discord_enabled(self) -> bool:
        return bool(self.discord_token)

    @property
    def backups_path(self) -> Path:
        return self.backup_dir if self.backup_dir is not None else self.data_dir / "backups"

    @property
    def metrics_host_port(self) -> tuple[str, int]:
        host, _, port = self.metrics_addr.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def interactions_host_port(self) -> tuple[str, int]:
        host, _, port = self.interactions_addr.rpartition(":")
        return host.strip("[]"), int(port)


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Read the file (if any) and the environment into a checked ``Config``."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    file_path = path or environ.get(f"{ENV_PREFIX}CONFIG")
    if file_path:
        try:
            with open(file_path, "rb") as handle:
                document = tomllib.load(handle)
        except OSError as exc:
            raise ConfigError(f"config file {file_path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file_path}: not valid TOML ({exc})") from exc
        for key, value in _flatten(document).items():
            if key not in _FIELDS:
                raise ConfigError(
                    f"config key {key!r} is unknown; known keys: {', '.join(_FIELDS)}"
                )
            values[key] = _coerce(key, value, source="config file")
    for name in _FIELDS:
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = _coerce(name, raw, source="environment")
    config = Config(**values)
    _check(config)
    return config


def _flatten(document: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``[discord] token = ...`` is the same key as ``discord_token = ...``."""
    flat: dict[str, Any] = {}
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}_"))
        else:
            flat[name] = value
    return flat


def _coerce(name: str, value: Any, *, source: str) -> Any:
    kind = str(_FIELDS[name].type)
    label = f"{ENV_PREFIX}{name.upper()}" if source == "environment" else name
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError("expected a whole number")
            return int(value)
        if kind in ("Path", "Path | None"):
            return Path(str(value)).expanduser()
        return str(value)
    except ValueError as exc:
        raise ConfigError(f"{label} = {value!r} is invalid: {exc}") from None


def _check(config: Config) -> None:
    def fail(key: str, why: str) -> None:
        raise ConfigError(f"{ENV_PREFIX}{key.upper()} / {key}: {why}")

    if config.economy_scope not in ("guild", "global"):
        fail("economy_scope", f"{config.economy_scope!r} must be 'guild' or 'global'")
    host, _, port = config.metrics_addr.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        fail("metrics_addr", f"{config.metrics_addr!r} must be host:port, e.g. 127.0.0.1:9464")
    _check_interactions(config, fail)
    if not config.discord_api_url.startswith(("http://", "https://")):
        fail("discord_api_url", f"{config.discord_api_url!r} must be an http(s) URL")
    if config.log_level.lower() not in ("debug", "info", "warning", "error"):
        fail("log_level", f"{config.log_level!r} must be debug, info, warning or error")
    hour, _, minute = config.backup_time.partition(":")
    if not (hour.isdigit() and minute.isdigit() and int(hour) < 24 and int(minute) < 60):
        fail("backup_time", f"{config.backup_time!r} must be HH:MM in local time")
    positive = (
        "backup_keep_days",
        "integrity_interval_seconds",
        "game_idle_seconds",
        "game_recovery_seconds",
        "ratelimit_commands_per_minute",
        "ratelimit_burst",
    )
    for key in positive:
        if getattr(config, key) < 1:
            fail(key, f"{getattr(config, key)} must be at least 1")


def _check_interactions(config: Config, fail: Callable[[str, str], None]) -> None:
    if not config.interactions_addr:
        if not config.discord_gateway:
            fail("discord_gateway", "false needs the HTTP endpoint (CROUPIER_INTERACTIONS_ADDR)")
        return
    host, _, port = config.interactions_addr.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        fail(
            "interactions_addr",
            f"{config.interactions_addr!r} must be host:port, e.g. 0.0.0.0:8080",
        )
    key = config.discord_public_key
    if len(key) != 64 or any(c not in "0123456789abcdefABCDEF" for c in key):
        fail(
            "discord_public_key",
            "must be the application's public key (64 hex digits, from the developer "
            "portal) when the interactions endpoint is on",
        )
