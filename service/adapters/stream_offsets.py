"""The Write API's offset rule, for the writers that keep their streams themselves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, TypeVar

from service.errors import PermanentError, TransientError


class KeptStream(Protocol):
    """What the offset rule reads of a stream a writer keeps itself."""

    rows: int
    finalized: bool


T = TypeVar("T")
S = TypeVar("S", bound=KeptStream)


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


def finalize(streams: Mapping[str, S], stream: str) -> int:
    """Close the stream by name to appends; its row count (FinalizeWriteStream)."""
    s = opened(streams, stream)
    s.finalized = True
    return s.rows
