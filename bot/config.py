"""Configuration: a TOML file plus ``CROUPIER_*`` environment variables.

Precedence: environment over file over defaults. ``Config`` is a pydantic-settings model
in strict mode, so a value of the wrong type is refused rather than converted: a list, a
table, a date or a fractional number where a whole number belongs stops start-up, and
nothing is ever truncated. Environment values are text, so they are read first by
spelling rules of our own (ASCII digits only, a short list of words for booleans) and then
validated like values from the file. Every numeric key has a named maximum here, with its
unit last. An invalid value raises one ``ConfigError`` line naming the key and what it
expects: ``CROUPIER_X / x: expected ..., got ...``.

Unknown keys in the file are refused; unknown ``CROUPIER_*`` environment variables are
left alone, because the environment is shared with tools and tests that set their own.

Adding a key: a field whose ``description`` says what it expects (the error line quotes
it), bounds from a named maximum here for a number (``_whole``), a pattern or validator
for text, a place in ``SECRET_KEYS`` for a credential, and a line in the README's table
and in ``croupier.example.toml`` (a test checks both list exactly the keys).

This module holds the model; its sources (the file and the environment) are in
``bot.config_sources``, the checks of a whole configuration and its error line in
``bot.config_checks``. The names callers use are importable from here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from bot.config_checks import (
    SECRET_KEYS,
    check_dashboard,
    check_together,
    ensure_paths,
    one_line,
)
from bot.config_sources import (
    ENV_PREFIX,
    NO_INPUTS,
    ConfigError,
    Environment,
    Inputs,
    TomlFile,
    current_inputs,
    reading,
)
from limits import (
    api_ratelimit_burst_requests_max,
    api_ratelimit_requests_per_minute_max,
    backup_keep_days_max,
    discord_shard_ids_chars_max,
    discord_shards_max,
    discord_token_chars_max,
    game_idle_seconds_max,
    game_recovery_seconds_max,
    integrity_interval_seconds_max,
    path_chars_max,
    port_number_max,
    ratelimit_burst_commands_max,
    ratelimit_commands_per_minute_max,
    session_secret_chars_min,
    snowflake_id_max,
    timer_attempts_setting_max,
    url_chars_max,
)

__all__ = [
    "SECRET_KEYS",
    "Config",
    "ConfigError",
    "check_dashboard",
    "ensure_paths",
    "load_config",
]

DISCORD_API_URL_DEFAULT = "https://discord.com/api/v10"
DISCORD_OAUTH_URL_DEFAULT = "https://discord.com/oauth2/authorize"


def _whole(default: int, low: int, high: int, unit: str = "") -> Any:
    """A whole-number field from ``low`` to ``high``, whose error text says so."""
    suffix = f" {unit}" if unit else ""
    return Field(
        default, ge=low, le=high, description=f"a whole number from {low} to {high}{suffix}"
    )


def _path_text(value: object) -> Path:
    # Path("") is the current directory, so an empty value must be refused before it
    # becomes a path that silently means "here". A Path is a default or a caller's value.
    if isinstance(value, Path):
        return value
    if not isinstance(value, str) or not value or "\x00" in value or len(value) > path_chars_max:
        raise ValueError("not a path")
    return Path(value).expanduser()


def _lower_text(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _check_port(addr: str) -> str:
    if addr and int(addr.rpartition(":")[2]) > port_number_max:
        raise ValueError("port out of range")
    return addr


_PATH_EXPECTED = f"a directory path (text, 1 to {path_chars_max} characters)"
DirectoryPath = Annotated[Path, BeforeValidator(_path_text)]
_ADDRESS = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}"
Address = Annotated[str, Field(pattern=f"^{_ADDRESS}$"), AfterValidator(_check_port)]
# An address that may also be empty, for a listener that is off unless configured.
OptionalAddress = Annotated[str, Field(pattern=f"^({_ADDRESS})?$"), AfterValidator(_check_port)]


ShardCount = Annotated[str, Field(pattern=r"^(auto|[1-9][0-9]{0,4})$")]
ShardIds = Annotated[
    str,
    Field(pattern=r"^([0-9]{1,5}(,[0-9]{1,5})*)?$", max_length=discord_shard_ids_chars_max),
]


class Config(BaseSettings):
    """Every setting of the server; build it with ``load_config``."""

    model_config = SettingsConfigDict(
        strict=True,
        frozen=True,
        extra="forbid",
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
    )

    data_dir: DirectoryPath = Field(default=Path("data"), description=_PATH_EXPECTED)
    discord_token: str = Field(
        default="",
        pattern=r"^[!-~]*$",
        max_length=discord_token_chars_max,
        description="a bot token (printable ASCII without spaces), or empty for the console",
    )
    discord_api_url: str = Field(
        default=DISCORD_API_URL_DEFAULT,
        pattern=r"^https?://[!-~]+$",
        max_length=url_chars_max,
        description="an http(s) URL such as https://discord.com/api/v10",
    )
    metrics_addr: Address = Field(
        default="127.0.0.1:9464",
        description="host:port with a port from 0 to 65535, e.g. 127.0.0.1:9464",
    )
    economy_scope: Literal["guild", "global"] = Field(
        default="guild", description="'guild' or 'global'"
    )
    log_level: Annotated[
        Literal["debug", "info", "warning", "error"], BeforeValidator(_lower_text)
    ] = Field(default="info", description="debug, info, warning or error")
    log_file: str = Field(
        default="",
        pattern=r"^[^\x00-\x1f\x7f]*$",
        max_length=path_chars_max,
        description="a file path, or empty for stderr only",
    )
    log_json: bool = Field(default=False, description="true or false")
    backup_dir: DirectoryPath | None = Field(default=None, description=_PATH_EXPECTED)
    backup_time: str = Field(
        default="03:00",
        pattern=r"^([01]?[0-9]|2[0-3]):[0-5][0-9]$",
        description='a local time of day "HH:MM" (in quotes in TOML), e.g. "03:00"',
    )
    backup_keep_days: int = _whole(7, 1, backup_keep_days_max, "days")
    integrity_interval_seconds: int = _whole(3_600, 1, integrity_interval_seconds_max, "seconds")
    game_idle_seconds: int = _whole(300, 1, game_idle_seconds_max, "seconds")
    game_recovery_seconds: int = _whole(7_200, 1, game_recovery_seconds_max, "seconds")
    timer_attempts: int = _whole(5, 1, timer_attempts_setting_max, "attempts")
    ratelimit_commands_per_minute: int = _whole(30, 1, ratelimit_commands_per_minute_max)
    ratelimit_burst: int = _whole(10, 1, ratelimit_burst_commands_max, "commands")
    console_user: int = _whole(1, 1, snowflake_id_max, "(a Discord user id)")
    console_guild: int = _whole(1, 1, snowflake_id_max, "(a Discord server id)")
    console_admin: bool = Field(default=True, description="true or false")
    # Discord's HTTP interactions endpoint: host:port to serve POST /interactions on
    # (off when empty), the application's public key (hex) that signs deliveries, and
    # whether to connect the gateway too (with the endpoint on, it is optional).
    interactions_addr: OptionalAddress = Field(
        default="",
        description="host:port with a port from 0 to 65535, e.g. 0.0.0.0:8080, or empty for off",
    )
    discord_public_key: str = Field(
        default="",
        pattern=r"^([0-9A-Fa-f]{64})?$",
        description="the application's public key (64 hex digits, from the developer portal)",
    )
    discord_gateway: bool = Field(default=True, description="true or false")
    # Gateway sharding: the total shard count ("auto": the count Discord recommends in
    # GET /gateway/bot) and the shards this process runs (empty: all of them).
    discord_shards: ShardCount = Field(
        default="auto", description=f"auto or a whole number from 1 to {discord_shards_max}"
    )
    discord_shard_ids: ShardIds = Field(
        default="", description="shard ids separated by commas, e.g. 0,1,2, or empty for all"
    )
    # The public HTTP app: the HTTP API at /api/v1 (served by `croupier run`) and the
    # web dashboard (when it is on), so a console beside a server binds no port.
    http_addr: Address = Field(
        default="127.0.0.1:8080",
        description="host:port with a port from 0 to 65535, e.g. 127.0.0.1:8080",
    )
    api_ratelimit_requests_per_minute: int = _whole(
        1_200, 1, api_ratelimit_requests_per_minute_max, "(per API token)"
    )
    api_ratelimit_burst: int = _whole(100, 1, api_ratelimit_burst_requests_max, "requests")
    # The web dashboard, on when the application id is set: its OAuth2 credentials, the
    # public base URL Discord sends members back to, the secret that signs the session
    # cookies, and Discord's authorize page (configurable for tests and proxies).
    discord_client_id: int = _whole(0, 0, snowflake_id_max, "(the application id; 0: off)")
    discord_client_secret: str = Field(
        default="",
        pattern=r"^[!-~]*$",
        max_length=discord_token_chars_max,
        description="the application's OAuth2 client secret (printable ASCII without spaces)",
    )
    dashboard_url: str = Field(
        default="",
        pattern=r"^(https?://[!-~]+)?$",
        max_length=url_chars_max,
        description="the dashboard's public base URL such as https://casino.example.com, or empty",
    )
    session_secret: str = Field(
        default="",
        pattern=f"^([!-~]{{{session_secret_chars_min},}})?$",
        max_length=discord_token_chars_max,
        description=f"at least {session_secret_chars_min} printable ASCII characters "
        "without spaces (e.g. from `openssl rand -hex 32`), or empty",
    )
    discord_oauth_url: str = Field(
        default=DISCORD_OAUTH_URL_DEFAULT,
        pattern=r"^https?://[!-~]+$",
        max_length=url_chars_max,
        description="an http(s) URL such as https://discord.com/oauth2/authorize",
    )

    @property
    def discord_shard_count(self) -> int | None:
        """The total shard count, or None for Discord's recommendation."""
        return None if self.discord_shards == "auto" else int(self.discord_shards)

    @property
    def discord_shard_id_list(self) -> tuple[int, ...] | None:
        """The shards this process runs, or None for all of them."""
        if not self.discord_shard_ids:
            return None
        return tuple(int(part) for part in self.discord_shard_ids.split(","))

    @property
    def discord_enabled(self) -> bool:
        return bool(self.discord_token)

    @property
    def dashboard_enabled(self) -> bool:
        return self.discord_client_id != 0

    @property
    def backups_path(self) -> Path:
        return self.backup_dir if self.backup_dir is not None else self.data_dir / "backups"

    @property
    def metrics_host_port(self) -> tuple[str, int]:
        host, _, port = self.metrics_addr.rpartition(":")
        return host.strip("[]"), int(port)

    def is_set(self, key: str) -> bool:
        """Whether ``key`` came from the file or the environment, not from its default."""
        assert key in type(self).model_fields, f"no config key {key}"
        return key in self.model_fields_set

    @property
    def http_host_port(self) -> tuple[str, int]:
        host, _, port = self.http_addr.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def interactions_host_port(self) -> tuple[str, int]:
        host, _, port = self.interactions_addr.rpartition(":")
        return host.strip("[]"), int(port)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The process environment is read only through ``load_config``'s ``environ``, so
        # a bare ``Config()`` is the defaults and tests never see the caller's variables.
        inputs = current_inputs.get(NO_INPUTS)
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            Environment(settings_cls, inputs.environ),
        ]
        if inputs.file is not None:
            sources.append(TomlFile(settings_cls, inputs.file))
        return tuple(sources)


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Read the file (if any) and the environment into a checked ``Config``."""
    environ = os.environ if environ is None else environ
    file_name = path or environ.get(f"{ENV_PREFIX}CONFIG")
    file = Path(file_name).expanduser() if file_name else None
    if file is not None and not file.is_file():
        # The pydantic-settings file source skips a missing file; a named one must exist.
        why = "is a directory" if file.is_dir() else "No such file"
        raise ConfigError(f"config file {file}: {why}")
    try:
        with reading(Inputs(file, environ)):
            config = Config()
    except ValidationError as exc:
        raise ConfigError(one_line(exc, Config)) from None
    check_together(config)
    return config
