"""Small, strict readers for wire values (int64 as string or number, timestamps, base64, JSON).

Every reader either returns a value or raises EnvelopeError with a message naming only the
field, never the value: nothing read from a request goes back in an answer.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from service.errors import EnvelopeError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# ASCII digits only: str.isdigit() and int() also accept other scripts' digits ("٣" == 3).
INT64_TEXT = re.compile(r"-?[0-9]{1,19}")


def int64(value: Any, field: str) -> int | None:
    """An int64 as Google's JSON APIs send it: a decimal string, or (sometimes) a number."""
    if value is None or value == "":
        return None
    if type(value) is str and len(value) < 19 and value.isascii() and value.isdigit():
        return int(value)  # the usual case, read without the pattern (18 digits fit int64)
    if isinstance(value, bool):
        raise EnvelopeError(f"{field} is not an integer")
    if isinstance(value, str) and INT64_TEXT.fullmatch(value.strip()):
        value = int(value.strip())
    if isinstance(value, int) and INT64_MIN <= value <= INT64_MAX:
        return value
    raise EnvelopeError(f"{field} is not an int64")


def lenient_int(value: Any) -> int | None:
    """An int64 that is only informative (a delivery attempt): unreadable means unknown."""
    try:
        return int64(value, "value")
    except EnvelopeError:
        return None


def text(value: Any, field: str, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise EnvelopeError(f"{field} is missing")
        return None
    if not isinstance(value, str):
        raise EnvelopeError(f"{field} is not a string")
    return value


def timestamp(value: Any) -> datetime | None:
    """RFC 3339 time, or None when absent or unreadable (a time is never worth a 400)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except (ValueError, OverflowError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def b64decode(value: Any, field: str) -> bytes:
    """Pub/Sub data: standard base64 (what Google sends), or the URL-safe alphabet."""
    if value is None or value == "":
        return b""
    if not isinstance(value, str):
        raise EnvelopeError(f"{field} is not base64 text")
    padded = value + "=" * (-len(value) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:
        return base64.b64decode(padded, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeError(f"{field} is not valid base64") from exc


def parse_json(data: bytes | str, what: str) -> Any:
    """Strict JSON (RFC 8259), or EnvelopeError: invalid UTF-8, lone surrogates, NaN, nesting
    deeper than 1024. Integers past 64 bits come back as floats, which int64() refuses."""
    try:
        return orjson.loads(data)
    except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
        raise EnvelopeError(f"{what} is not JSON") from exc


def mapping(value: Any, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise EnvelopeError(f"{field} is not an object")
    return value


def str_mapping(value: Any, field: str) -> dict[str, str]:
    """Pub/Sub attributes: a map of strings to strings."""
    raw = mapping(value, field)
    if not all(isinstance(v, str) for v in raw.values()):
        raise EnvelopeError(f"{field} values are not all strings")
    return {str(k): v for k, v in raw.items()}


def first(raw: Mapping[str, Any], *names: str) -> Any:
    """The value under the first of several spellings (camelCase, snake_case) present."""
    for name in names:
        if name in raw:
            return raw[name]
    return None
