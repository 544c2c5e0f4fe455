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
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from limits import snowflake_id_max

DISCORD_API_URL_DEFAULT = "https://discord.com/api/v10"
DISCORD_OAUTH_URL_DEFAULT = "https://discord.com/oauth2/authorize"
ENV_PREFIX = "CROUPIER_"

# The bounds of every numeric key. A minute-scale mistake (seconds typed as
# milliseconds, a pasted snowflake) must be refused, not run with for weeks.
backup_keep_days_max = 3_650
integrity_interval_seconds_max = 7 * 86_400
game_idle_seconds_max = 86_400
game_recovery_seconds_max = 30 * 86_400
ratelimit_commands_per_minute_max = 1_000_000
ratelimit_burst_commands_max = 100_000
api_ratelimit_requests_per_minute_max = 6_000_000
api_ratelimit_burst_requests_max = 100_000
port_number_max = 65_535
# Discord's largest bots run thousands of shards; five digits leave room to spare.
discord_shards_max = 99_999
discord_shard_ids_chars_max = 4_096
# Text keys are bounded too, so one pasted file cannot become a setting.
discord_token_chars_max = 256
url_chars_max = 2_048
path_chars_max = 4_096
# The dashboard signs its cookies with this secret; a short one can be guessed.
session_secret_chars_min = 32
# An environment value longer than this many characters is not a number we accept, so it
# is never handed to int() (whose cost grows with the length of the text).
env_number_chars_max = 24
# How much of a refused value the error line repeats.
shown_value_chars_max = 60
# Keys whose refused values an error line must not repeat.
SECRET_KEYS = frozenset({"discord_token", "discord_client_secret", "session_secret"})

_ENV_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)
_ENV_TRUE = frozenset({"true", "yes", "on", "1"})
_ENV_FALSE = frozenset({"false", "no", "off", "0"})


class ConfigError(Exception):
    """A configuration value is invalid; the message is one line naming the key."""


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
        inputs = _inputs.get(_NO_INPUTS)
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            _Environment(settings_cls, inputs.environ),
        ]
        if inputs.file is not None:
            sources.append(_TomlFile(settings_cls, inputs.file))
        return tuple(sources)


@dataclass(frozen=True)
class _Inputs:
    file: Path | None
    environ: Mapping[str, str]


# pydantic-settings builds its sources in a class method, so the file and environment of
# one ``load_config`` call reach it through a context variable set for that call only.
_inputs: ContextVar[_Inputs] = ContextVar("croupier_config_inputs")
_NO_INPUTS = _Inputs(None, {})


@contextmanager
def _reading(inputs: _Inputs) -> Iterator[None]:
    token = _inputs.set(inputs)
    try:
        yield
    finally:
        _inputs.reset(token)


class _Environment(EnvSettingsSource):
    """``CROUPIER_*`` variables from a given mapping, spelled as text and read strictly."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name.lower(): value for name, value in self._environ.items()}

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        # Text that is not spelled as the type wants stays text, so the strict model
        # refuses it with the key's expectation instead of guessing what was meant.
        if not isinstance(value, str):
            return value
        if field.annotation is bool:
            word = value.lower()
            return True if word in _ENV_TRUE else False if word in _ENV_FALSE else value
        if field.annotation is int:
            spelled = len(value) <= env_number_chars_max and _ENV_INTEGER.fullmatch(value)
            return int(value) if spelled else value
        return value


class _TomlFile(TomlConfigSettingsSource):
    """The TOML file, with ``[section] key`` read as the key ``section_key``."""

    def _read_file(self, file_path: Path) -> dict[str, Any]:
        try:
            with file_path.open("rb") as handle:
                document = tomllib.load(handle)
        except OSError as exc:
            raise ConfigError(f"config file {file_path}: {exc.strerror}") from exc
        except ValueError as exc:
            # TOMLDecodeError is a ValueError, and so is tomllib's refusal of an integer
            # longer than Python's int-string limit.
            raise ConfigError(f"config file {file_path}: not valid TOML ({exc})") from exc
        flat: dict[str, Any] = {}
        _flatten(document, flat, file_path, prefix="", spelled="")
        return flat


def _flatten(
    table: Mapping[str, Any], flat: dict[str, Any], file_path: Path, *, prefix: str, spelled: str
) -> None:
    fields = Config.model_fields
    for key, value in table.items():
        name, shown = prefix + key, f"{spelled}.{key}" if spelled else key
        if name in fields:
            if name in flat:
                raise ConfigError(
                    f"{_label(name)}: expected one value, got a second one in {file_path} "
                    f"(as {shown})"
                )
            # A table where a value belongs stays a table, so the key reports its type.
            flat[name] = value
        elif isinstance(value, dict) and any(field.startswith(name + "_") for field in fields):
            _flatten(value, flat, file_path, prefix=name + "_", spelled=shown)
        else:
            raise ConfigError(
                f"config key {shown!r} in {file_path} is unknown; known keys: {', '.join(fields)}"
            )


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
        with _reading(_Inputs(file, environ)):
            config = Config()
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None
    _check_together(config)
    return config


def _check_together(config: Config) -> None:
    """Rules that tie keys together, each valid on its own."""
    if not config.interactions_addr and not config.discord_gateway:
        raise ConfigError(
            f"{_label('discord_gateway')}: expected true unless the HTTP endpoint is on "
            "(CROUPIER_INTERACTIONS_ADDR), got false"
        )
    ids, count = config.discord_shard_id_list, config.discord_shard_count
    if ids is not None and count is None:
        raise ConfigError(
            f"{_label('discord_shard_ids')}: expected empty unless "
            f"{_label('discord_shards')} is a number (every process must agree on the "
            f"total), got {_shown(config.discord_shard_ids)}"
        )
    if ids is not None and count is not None and (max(ids) >= count or len(set(ids)) < len(ids)):
        raise ConfigError(
            f"{_label('discord_shard_ids')}: expected distinct shard ids below "
            f"{_label('discord_shards')} = {count}, got {_shown(config.discord_shard_ids)}"
        )
    if config.interactions_addr and not config.discord_public_key:
        raise ConfigError(
            f"{_label('discord_public_key')}: expected {_expected('discord_public_key')} "
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
                f"{_label(key)}: expected a value when the dashboard is on "
                "(CROUPIER_DISCORD_CLIENT_ID is set), got ''"
            )


def _label(key: str) -> str:
    return f"{ENV_PREFIX}{key.upper()} / {key}"


def _one_line(error: ValidationError) -> str:
    """pydantic's report, one entry per failed check, as one line for the first bad key."""
    order = list(Config.model_fields)
    details = error.errors(include_url=False)
    keys = sorted({str(d["loc"][0]) for d in details}, key=lambda k: order.index(k))
    key = keys[0]
    first = next(d for d in details if d["loc"][0] == key)
    got = _hidden(first["input"]) if key in SECRET_KEYS else _shown(first["input"])
    line = f"{_label(key)}: expected {_expected(key)}, got {got}"
    if len(keys) > 1:
        line += f" (also invalid: {', '.join(keys[1:])})"
    return line


def _expected(key: str) -> str:
    description = Config.model_fields[key].description
    assert description is not None, f"config key {key} has no description"
    return description


def _hidden(value: object) -> str:
    """A refused secret, described without its text: error lines end up in logs."""
    if isinstance(value, str):
        return f"{len(value)} characters (not shown)"
    return f"a TOML {type(value).__name__} (not shown)"


def _shown(value: object) -> str:
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
                f"{_label('log_file')}: expected a file this process can append to, "
                f"got {config.log_file!r} ({exc.strerror})"
            ) from exc


def _ensure_directory(key: str, path: Path) -> None:
    def refuse(why: str) -> ConfigError:
        return ConfigError(
            f"{_label(key)}: expected a directory this process can create and "
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
