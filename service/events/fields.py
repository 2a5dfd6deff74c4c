"""Small, strict readers for wire values (int64 as string or number, timestamps, base64)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from service.errors import EnvelopeError


def int64(value: Any, field: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise EnvelopeError(f"{field} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise EnvelopeError(f"{field} is not an integer")


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
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def b64decode(value: Any, field: str) -> bytes:
    if value is None or value == "":
        return b""
    if not isinstance(value, str):
        raise EnvelopeError(f"{field} is not base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        try:
            return base64.urlsafe_b64decode(value)
        except (binascii.Error, ValueError):
            raise EnvelopeError(f"{field} is not valid base64") from exc


def mapping(value: Any, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise EnvelopeError(f"{field} is not an object")
    return value


def str_mapping(value: Any, field: str) -> dict[str, str]:
    raw = mapping(value, field)
    return {str(k): str(v) for k, v in raw.items()}


def first(raw: Mapping[str, Any], *names: str) -> Any:
    """The value under the first of several spellings (camelCase, snake_case) present."""
    for name in names:
        if name in raw:
            return raw[name]
    return None
