"""msgpack records that carry a version and keep fields they do not know.

A record is a msgpack map with a ``v`` key holding its version. ``RecordCodec`` maps a
dataclass to records: decoding checks the version (a newer one is a clear error, never a
silent loss), upgrades older versions step by step, and puts fields the dataclass does not
declare into its ``extra`` mapping so that a read-modify-write by an older Croupier keeps
them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar, cast

import msgpack

from storage.errors import RecordDecodeError, RecordVersionError

VERSION_FIELD = "v"
EXTRA_FIELD = "extra"

T = TypeVar("T")
Upgrade = Callable[[dict[str, Any]], dict[str, Any]]


def packb(value: Any) -> bytes:
    """Encode a plain value (no version) with the project's msgpack settings."""
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


def unpackb(data: bytes) -> Any:
    """Decode a plain value written by ``packb``."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise RecordDecodeError(f"stored value is not valid msgpack: {exc}") from exc


def decode_fields(kind: str, data: bytes, version: int) -> tuple[int, dict[str, Any]]:
    """Decode a versioned record into (its version, its fields without ``v``)."""
    value = unpackb(data)
    if not isinstance(value, dict) or not isinstance(value.get(VERSION_FIELD), int):
        raise RecordDecodeError(f"{kind} record is not a versioned map")
    found = value.pop(VERSION_FIELD)
    if found > version:
        raise RecordVersionError(kind, found, version)
    if found < 1:
        raise RecordDecodeError(f"{kind} record has invalid version {found}")
    return found, value


class RecordCodec(Generic[T]):
    """Encode and decode one dataclass as versioned records.

    ``upgrades[n]`` turns the fields of a version-``n`` record into version ``n + 1``.
    The dataclass must declare ``extra: dict[str, Any]`` to hold unknown fields.
    """

    def __init__(
        self,
        cls: type[T],
        *,
        kind: str,
        version: int,
        upgrades: Mapping[int, Upgrade] | None = None,
    ) -> None:
        assert dataclasses.is_dataclass(cls), cls
        names = [f.name for f in dataclasses.fields(cls)]
        assert EXTRA_FIELD in names, f"{cls.__name__} needs an 'extra' field"
        self.cls = cls
        self.kind = kind
        self.version = version
        self.upgrades = dict(upgrades or {})
        assert all(1 <= n < version for n in self.upgrades), self.upgrades
        self._names = tuple(n for n in names if n != EXTRA_FIELD)
        self._known = frozenset(self._names)

    def encode(self, obj: T) -> bytes:
        fields: dict[str, Any] = dict(getattr(obj, EXTRA_FIELD))
        # Write side: kept unknown fields never hold the version (``decode`` checks the
        # read side), so the version written is always this codec's.
        assert VERSION_FIELD not in fields, (self.kind, fields[VERSION_FIELD])
        for name in self._names:
            fields[name] = getattr(obj, name)
        fields[VERSION_FIELD] = self.version
        return packb(fields)

    def decode(self, data: bytes) -> T:
        found, fields = decode_fields(self.kind, data, self.version)
        while found < self.version:
            upgrade = self.upgrades.get(found)
            if upgrade is None:
                raise RecordDecodeError(f"{self.kind} record version {found} has no upgrade")
            fields = upgrade(fields)
            found += 1
        assert found == self.version, (self.kind, found, self.version)
        assert VERSION_FIELD not in fields, self.kind
        known = {k: v for k, v in fields.items() if k in self._known}
        extra = {k: v for k, v in fields.items() if k not in self._known}
        try:
            factory: Any = self.cls
            return cast(T, factory(**known, extra=extra))
        except TypeError as exc:
            raise RecordDecodeError(f"{self.kind} record is missing fields: {exc}") from exc
