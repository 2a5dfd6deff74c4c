"""What a unit's stages report as they work: the watchdog's one view of a running unit.

Stages ``advance`` as they move (bytes extracted, a batch parsed, validated or spooled); during
the load the warehouse reports whether its job still runs (``probe``). A stage waiting for room
in a slower stage downstream says so, so that a stall is blamed on the stage that holds the
others up, not on the ones queued behind it (or in front of it).

The same counts (bytes extracted, rows validated) are what a terminal shows of a long unit or a
sweep: ``Board`` holds every unit of this process while it runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator

# Asks the warehouse whether the unit's load job is still running.
Probe = Callable[[], Awaitable[bool]]


class Progress:
    """Progress of one unit; written and read on the event loop only."""

    def __init__(self) -> None:
        self.ticks = 0  # grows with every step any stage makes
        self.bytes = 0  # bytes extracted (inflated when the object is gzip)
        self.rows = 0  # rows validated
        self.probe: Probe | None = None  # set while a stage waits on the warehouse
        self._active: list[str] = []  # stages started and not ended, in the order they started
        self._waiting: list[str] = []  # stages waiting for room downstream
        self._last = "start"

    def advance(self, stage: str, *, rows: int = 0, nbytes: int = 0) -> None:
        self.ticks += 1
        self.rows += rows
        self.bytes += nbytes

    def read_again(self, nbytes: int) -> None:
        """The object is read again from its start: the ``nbytes`` extracted so far go."""
        self.ticks += 1
        self.bytes -= nbytes

    def working(self, stage: str) -> contextlib.AbstractContextManager[None]:
        """The stage runs for as long as the block does."""
        self._last = stage
        return _member(self._active, stage)

    def waiting_for_room(self, stage: str) -> contextlib.AbstractContextManager[None]:
        return _member(self._waiting, stage)

    @contextlib.contextmanager
    def probing(self, probe: Probe) -> Iterator[None]:
        """While the block runs, the warehouse's word that its job runs counts as progress."""
        self.probe = probe
        try:
            yield
        finally:
            self.probe = None

    @property
    def stage(self) -> str:
        """The stage to blame for a stall: the first running one not waiting on another."""
        for stage in self._active:
            if stage not in self._waiting:
                return stage
        return self._active[-1] if self._active else self._last


@contextlib.contextmanager
def _member(group: list[str], stage: str) -> Iterator[None]:
    """``stage`` is in ``group`` while the block runs."""
    group.append(stage)
    try:
        yield
    finally:
        group.remove(stage)


class Board:
    """Every unit of this process while it runs, and the totals of those that ended."""

    def __init__(self) -> None:
        self.running: dict[str, Progress] = {}
        self.ended = 0
        self._rows_ended = 0
        self._bytes_ended = 0

    @contextlib.contextmanager
    def watching(self, unit: str, progress: Progress) -> Iterator[None]:
        self.running[unit] = progress
        try:
            yield
        finally:
            self.running.pop(unit, None)
            self.ended += 1
            self._rows_ended += progress.rows
            self._bytes_ended += progress.bytes

    @property
    def rows(self) -> int:
        return self._rows_ended + sum(p.rows for p in self.running.values())

    @property
    def bytes(self) -> int:
        return self._bytes_ended + sum(p.bytes for p in self.running.values())
