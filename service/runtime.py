"""What the app holds while it serves: settings, pipelines, backends and the ingestor."""

from __future__ import annotations

import asyncio
import logging

from quart import current_app

from service.ingest import Ingestor
from service.metrics import Metrics
from service.pipeline.definition import PipelineSet
from service.settings import Settings
from service.tracing import Tracing
from service.wiring import (
    Backends,
    build_backends,
    build_ingestor,
    load_config,
    metric_exporters,
    preflight,
    span_exporters,
)

log = logging.getLogger(__name__)

# At shutdown, how long the units given up get to release their leases before clients close.
ABANDON_TIMEOUT_SECONDS = 1.5
# At shutdown, how long the clients get to close (a client stuck in a call must not hold exit).
CLOSE_TIMEOUT_SECONDS = 1.0


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # The pipelines file is validated at start-up, before any client is opened.
        self.pipelines: PipelineSet = load_config(settings)
        preflight(settings)  # here, not when serving starts: one line, no traceback
        self._backends: Backends | None = None
        self._ingestor: Ingestor | None = None
        self.metrics: Metrics | None = None
        self.tracing: Tracing | None = None
        self.draining = False

    def drain(self) -> None:
        """Shutdown has begun: refuse new events (the platform redelivers them elsewhere)."""
        self.draining = True
        if self._ingestor is not None:
            self._ingestor.draining = True

    async def open(self) -> None:
        self._backends = build_backends(self.settings)
        self.metrics = Metrics(metric_exporters(self.settings))
        self.tracing = Tracing(span_exporters(self.settings))
        self._ingestor = build_ingestor(
            self.settings, self._backends, self.pipelines, self.metrics, self.tracing
        )
        budget = self._ingestor.runner.budget
        self.metrics.buffered = lambda: budget.used
        log.info(
            "serving on the %s backend with %d pipelines",
            self.settings.backend,
            len(self.pipelines.pipelines),
        )

    async def settle(self) -> None:
        """Until this process's own work queue (embedded fan-out) has run every unit in it."""
        drain = getattr(self._backends.work if self._backends else None, "drain", None)
        if drain is not None:
            await drain()

    async def give_up_after(self, seconds: float) -> None:
        """Shutdown: give the units in flight this long, then give up those still running."""
        await asyncio.sleep(seconds)
        await self.abandon()

    async def abandon(self) -> None:
        """Cancel the units still running; each releases its lease, its request answers 503."""
        if self._ingestor is None:
            return
        given_up = await self._ingestor.abandon(ABANDON_TIMEOUT_SECONDS)
        if given_up:
            log.warning("shutdown: gave up %d unit(s) still running; leases released", given_up)

    async def close(self) -> None:
        await self.abandon()  # anything still running when serving ends
        if self._ingestor is not None:
            self._ingestor.runner.close()
        if self._backends is not None:
            try:
                await asyncio.wait_for(self._backends.close(), CLOSE_TIMEOUT_SECONDS)
            except TimeoutError:
                log.warning("shutdown: clients not closed in %ss; leaving", CLOSE_TIMEOUT_SECONDS)
            self._backends = None
            self._ingestor = None
        if self.metrics is not None:
            self.metrics.close()
        if self.tracing is not None:
            self.tracing.close()

    @property
    def backends(self) -> Backends:
        if self._backends is None:
            raise RuntimeError("backends are not open: the app is not serving")
        return self._backends

    @property
    def ingestor(self) -> Ingestor:
        if self._ingestor is None:
            raise RuntimeError("the app is not serving")
        return self._ingestor


def runtime() -> Runtime:
    found: Runtime = current_app.extensions["runtime"]
    return found
