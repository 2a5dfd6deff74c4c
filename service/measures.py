"""What the use case reports about its units, as small interfaces: metrics.py and tracing.py
implement them.

The ingestor calls ``unit()`` around each unit and ``refused()`` for each work message answered
busy; NO_METRICS does nothing (unit tests, the CLI). The spans: the ingestor opens a unit's,
the runner one per stage inside it; NO_SPANS opens none. No I/O, no telemetry library here.
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


class UnitSpans(Protocol):
    def unit(self, pipeline: str, unit: str) -> contextlib.AbstractContextManager[None]:
        """Around one unit: its span, and the logs inside it linked to that span."""
        ...

    def stage(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Around one stage of the unit running in this context."""
        ...


class NoSpans:
    def unit(self, pipeline: str, unit: str) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def stage(self, name: str) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


NO_SPANS = NoSpans()
