"""Where configuration comes from: the TOML file and the ``CROUPIER_*`` environment.

Both are pydantic-settings sources. The environment's values are text, read first by
spelling rules of our own (ASCII digits only, a short list of words for booleans) so
that the strict model validates them like values from the file; the file's
``[section] key`` is read as the key ``section_key``, and a key it does not know is
refused. ``bot.config`` builds its model from them.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    TomlConfigSettingsSource,
)

from limits import env_number_chars_max

ENV_PREFIX = "CROUPIER_"


_ENV_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)
_ENV_TRUE = frozenset({"true", "yes", "on", "1"})
_ENV_FALSE = frozenset({"false", "no", "off", "0"})


class ConfigError(Exception):
    """A configuration value is invalid; the message is one line naming the key."""


@dataclass(frozen=True)
class Inputs:
    file: Path | None
    environ: Mapping[str, str]


# pydantic-settings builds its sources in a class method, so the file and environment of
# one ``load_config`` call reach it through a context variable set for that call only.
current_inputs: ContextVar[Inputs] = ContextVar("croupier_config_inputs")
NO_INPUTS = Inputs(None, {})


@contextmanager
def reading(inputs: Inputs) -> Iterator[None]:
    token = current_inputs.set(inputs)
    try:
        yield
    finally:
        current_inputs.reset(token)


class Environment(EnvSettingsSource):
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


class TomlFile(TomlConfigSettingsSource):
    """The TOML file, with ``[section] key`` read as the key ``section_key``."""

    def __init__(self, settings_cls: type[BaseSettings], toml_file: Path) -> None:
        # The base class reads the file before it keeps ``settings_cls``, so the keys the
        # file may hold are taken here first.
        self._fields = settings_cls.model_fields
        super().__init__(settings_cls, toml_file)

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
        _flatten(self._fields, document, flat, file_path, prefix="", spelled="")
        return flat


def _flatten(
    fields: Mapping[str, FieldInfo],
    table: Mapping[str, Any],
    flat: dict[str, Any],
    file_path: Path,
    *,
    prefix: str,
    spelled: str,
) -> None:
    for key, value in table.items():
        name, shown = prefix + key, f"{spelled}.{key}" if spelled else key
        if name in fields:
            if name in flat:
                raise ConfigError(
                    f"{label(name)}: expected one value, got a second one in {file_path} "
                    f"(as {shown})"
                )
            # A table where a value belongs stays a table, so the key reports its type.
            flat[name] = value
        elif isinstance(value, dict) and any(field.startswith(name + "_") for field in fields):
            _flatten(fields, value, flat, file_path, prefix=name + "_", spelled=shown)
        else:
            raise ConfigError(
                f"config key {shown!r} in {file_path} is unknown; known keys: {', '.join(fields)}"
            )


def label(key: str) -> str:
    return f"{ENV_PREFIX}{key.upper()} / {key}"
