"""Values from outside, parsed once at the boundary.

Every transport (console, Discord gateway, HTTP endpoint) and the CLI turn what a user or
Discord sent into typed values here, so the checks exist once: an id is a Discord
snowflake, a number is a whole number within its bounds, text is NFC-normalised with no
control, zero-width or lone surrogate characters. A value that does not fit is refused
with ``InvalidInput`` naming the field; below this module the domain asserts instead.

Nothing here relies on Python's int-string conversion limit: text with more digits than a
bound allows is refused before it is converted, and a value is never shown with ``repr``
when that could fail (an integer of thousands of digits) or flood a message.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from actors.errors import InvalidInput
from limits import (
    number_digits_max,
    shown_input_chars_max,
    snowflake_digits_max,
    snowflake_id_max,
    snowflake_id_min,
    text_chars_max_default,
)

_ASCII_DIGITS = re.compile(rf"[0-9]{{1,{snowflake_digits_max}}}")
# Zero-width and invisible characters that are not format characters (category Cf,
# refused as a whole): the Hangul fillers and the braille blank render as nothing too.
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800")


class OversizedNumber:
    """A number whose text is longer than any bound admits, kept as its length only.

    The console's JSON reader produces it instead of converting thousands of digits, so
    that the option it was given for can be named when it is refused."""

    __slots__ = ("digits",)

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"a number of {self.digits} digits"


def shown(value: object) -> str:
    """A short, always printable description of ``value`` for an error message."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        if value.bit_length() > 64 * 2:
            return f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"
        return str(value)
    if isinstance(value, float | OversizedNumber):
        return repr(value)
    if isinstance(value, str):
        text = value if len(value) <= shown_input_chars_max else value[:shown_input_chars_max] + "…"
        return ascii(text) if _has_unprintable(text) else repr(text)
    return f"a {type(value).__name__}"


def snowflake(value: object, field: str) -> int:
    """A Discord id (user, guild, channel, role, interaction): an ``int`` or a string of
    ASCII digits, from 1 to 2**64-1. Anything else is refused naming ``field``."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _ASCII_DIGITS.fullmatch(value):
        number = int(value)
    if number is None or not snowflake_id_min <= number <= snowflake_id_max:
        raise InvalidInput(
            field, f"{shown(value)} is not a Discord id (a whole number from 1 to 2**64-1)"
        )
    return number


def is_snowflake(value: object) -> bool:
    """True when ``value`` is an ``int`` id within the snowflake range."""
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and snowflake_id_min <= value <= snowflake_id_max
    )


def whole_number(value: object, field: str, *, minimum: int, maximum: int) -> int:
    """An ``int`` (never a bool, float or text) from ``minimum`` to ``maximum``."""
    assert minimum <= maximum, (minimum, maximum)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(field, f"{shown(value)} is not a whole number")
    if value < minimum:
        raise InvalidInput(field, f"must be at least {minimum}")
    if value > maximum:
        raise InvalidInput(field, f"must be at most {maximum}")
    return value


def number_from_text(text: str) -> int | OversizedNumber | None:
    """The whole number a user typed (ASCII digits, an optional sign), or an
    ``OversizedNumber`` when it has more digits than any bound admits, or None when the
    text is not a whole number at all."""
    digits = text[1:] if text[:1] in "+-" else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    if len(digits) > number_digits_max:
        return OversizedNumber(len(digits))
    return int(text)


def clean_text(value: object, field: str, *, chars_max: int = text_chars_max_default) -> str:
    """Text as stored and shown: NFC-normalised, at most ``chars_max`` characters after
    normalisation, with no control, line or paragraph separator, format (zero-width,
    bidirectional), lone surrogate or invisible filler characters."""
    if not isinstance(value, str):
        raise InvalidInput(field, f"{shown(value)} is not text")
    # Checked before normalising: a lone surrogate cannot be normalised, and a huge
    # value should not be normalised only to be refused.
    if len(value) > 4 * chars_max + 16:
        raise InvalidInput(field, f"must be at most {chars_max} characters")
    for char in value:
        bad = _bad_char(char)
        if bad:
            raise InvalidInput(field, f"contains {bad} (U+{ord(char):04X}); remove it")
    text = unicodedata.normalize("NFC", value)
    if len(text) > chars_max:
        raise InvalidInput(field, f"must be at most {chars_max} characters")
    return text


def refused_in_text(char: str) -> bool:
    """Whether ``clean_text`` refuses ``char`` wherever it appears."""
    return bool(_bad_char(char))


def _bad_char(char: str) -> str:
    """What is wrong with ``char`` in stored text, or "" if nothing."""
    category = unicodedata.category(char)
    if category == "Cc":
        return "a control character"
    if category == "Cs":
        return "a lone surrogate"
    if category in ("Zl", "Zp"):
        return "a line break"
    if category == "Cf" or char in _INVISIBLE:
        return "an invisible character"
    return ""


def _has_unprintable(text: str) -> bool:
    return any(_bad_char(char) for char in text)


def json_object(text: bytes | str, field: str, *, depth_max: int) -> dict[str, Any]:
    """A JSON object from outside (a request body), with nesting refused past
    ``depth_max`` before parsing, integers longer than any bound kept as
    ``OversizedNumber`` (never converted), and NaN or Infinity refused."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(field, "is not UTF-8 text") from None
    if json_deeper_than(text, depth_max):
        raise InvalidInput(field, f"is nested deeper than {depth_max} levels")
    try:
        value = json.loads(text, parse_int=json_integer, parse_constant=_no_constant)
    except ValueError as err:
        raise InvalidInput(field, f"is not valid JSON ({err.__class__.__name__})") from None
    if not isinstance(value, dict):
        raise InvalidInput(field, "must be a JSON object")
    return value


def json_deeper_than(text: str, depth_max: int) -> bool:
    """Whether ``text``'s arrays and objects nest deeper than ``depth_max`` (brackets
    inside strings do not count), found without parsing it. The count of opening
    brackets bounds the depth, so a typical request is never walked character by
    character."""
    if text.count("[") + text.count("{") <= depth_max:
        return False
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > depth_max:
                return True
        elif char in "]}":
            depth -= 1
    return False


def json_integer(text: str) -> int | OversizedNumber:
    """``parse_int`` for ``json.loads``: no more digits converted than a bound admits."""
    number = number_from_text(text)
    assert number is not None, text
    return number


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")
