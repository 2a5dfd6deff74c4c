"""What the use case reports about its units, as a small interface: metrics.py implements it.

The ingestor calls ``unit()`` around each unit and ``refused()`` for each work message answered
busy; NO_METRICS does nothing (unit tests, the CLI). No I/O, no metrics library here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from service.models import EventMeta
    from service.results import UnitOutcome


class UnitMeasure(Protocol):
    def ended(self, outcome: UnitOutcome) -> None: ...


class UnitMetrics(Protocol):
    def unit(
        self, pipeline: str, meta: EventMeta
    ) -> contextlib.AbstractContextManager[UnitMeasure]:
        """Around one unit: counts it in flight, times it, and records the event's age."""
        ...

    def refused(self, pipeline: str) -> None:
        """A work message answered busy: every unit slot was taken."""
        ...


class _Unmeasured:
    def ended(self, outcome: UnitOutcome) -> None:
        return None


class NoMetrics:
    @contextlib.contextmanager
    def unit(self, pipeline: str, meta: EventMeta) -> Iterator[UnitMeasure]:
        yield _Unmeasured()

    def refused(self, pipeline: str) -> None:
        return None


NO_METRICS = NoMetrics()
