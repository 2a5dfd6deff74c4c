"""A watchdog, not a blind heartbeat: a unit lives while its stages make progress.

The lease is renewed only while the unit is alive (``alive``); a unit with no progress for
``stall_seconds`` is cancelled, and the use case releases its lease and answers the event
transient, naming the stage that stalled. So no input can hold a unit slot for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from service.errors import IngestError, StageError, TransientError
from service.pipeline.progress import Progress

log = logging.getLogger(__name__)
T = TypeVar("T")
# Checks per stall bound: a stalled unit is cancelled within 1.25 bounds of its last progress.
CHECKS_PER_BOUND = 4


class Watchdog:
    def __init__(
        self,
        progress: Progress,
        stall_seconds: float,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.progress = progress
        self.stall_seconds = stall_seconds
        self._clock = clock or asyncio.get_running_loop().time
        self._seen = progress.ticks
        self._moved_at: float | None = None  # None until the unit starts running
        self.stalled: str | None = None  # the stage blamed, once the unit was cancelled

    def alive(self) -> bool:
        """Whether the lease may be renewed: the unit waits for a slot, or moved lately."""
        if self.stalled is not None:
            return False
        return self._moved_at is None or self._clock() - self._moved_at < self.stall_seconds

    async def guard(self, unit: str, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` watched: a stall ends it as a transient failure of the stage blamed."""
        task = asyncio.ensure_future(work)
        watcher = asyncio.create_task(self.watch(task))
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self.stalled is None or (current is not None and current.cancelling()):
                raise  # cancelled from outside (shutdown), not by the watchdog
            cause = TransientError(f"no progress for {self.stall_seconds:g} s")
            raise StageError(self.stalled, unit, cause) from None
        finally:
            watcher.cancel()

    async def watch(self, unit: asyncio.Future[Any]) -> None:
        """Cancel ``unit`` once it has made no progress for the bound; until it ends."""
        self._moved_at = self._clock()
        every = self.stall_seconds / CHECKS_PER_BOUND
        while not unit.done():
            await asyncio.wait({unit}, timeout=every)
            if unit.done():
                return
            if await self._moved(every):
                self._moved_at = self._clock()
            elif not self.alive():
                self.stalled = self.progress.stage
                log.warning(
                    "no progress for %g s in stage %s: unit cancelled",
                    self.stall_seconds,
                    self.stalled,
                    extra={"stage": self.stalled},
                )
                unit.cancel()
                return

    async def _moved(self, wait_seconds: float) -> bool:
        ticks = self.progress.ticks
        if ticks != self._seen:
            self._seen = ticks
            return True
        probe = self.progress.probe
        if probe is None:
            return False
        # A failed or hanging probe says nothing: only the bound decides.
        with contextlib.suppress(IngestError, TimeoutError):
            return await asyncio.wait_for(probe(), wait_seconds)
        return False
