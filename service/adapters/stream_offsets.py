"""The Write API's offset rule, for the writers that keep their streams themselves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from service.errors import PermanentError, TransientError

T = TypeVar("T")


def fresh_offset(stream: str, finalized: bool, rows: int, offset: int) -> bool:
    """True when rows go at ``offset`` now; False when rows are there already (ALREADY_EXISTS).
    Past the end is OUT_OF_RANGE (retried); a finalized stream takes no more rows."""
    if finalized:
        raise PermanentError(f"stream {stream} is finalized")
    if offset > rows:
        raise TransientError(f"offset {offset} is beyond the end of {stream} ({rows})")
    return offset == rows


def opened(streams: Mapping[str, T], stream: str) -> T:
    """The stream by name; an unknown one is refused as the API refuses it."""
    found = streams.get(stream)
    if found is None:
        raise PermanentError(f"no open stream {stream}")
    return found
