"""A sweep fanned out: list the source page by page, publish one work message per object
generation not yet finished, and answer at once with how many were published.

Each work message comes back by push (or, embedded, from this process's queue) and runs as an
ordinary unit on whichever instance receives it, so a backfill of thousands of objects is spread
over instances and no request has to outlive its deadline. After each page the listing's cursor
is written beside the ledger: a sweep request delivered again (the first attempt was cut off)
resumes from the page it reached. Publishing a unit twice is harmless: the ledger runs it once.
Memory is one page at a time, whatever the listing's length.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from service.errors import TransientError
from service.events.work import encode_work
from service.models import ObjectInfo, SweepRequested
from service.pipeline.definition import Pipeline, PipelineSet
from service.plans import needs_work, sweep_key, sweep_prefix, swept_objects, unit_key
from service.ports import IdempotencyStore, ObjectStore, SweepCursor, SweepCursors, WorkPublisher
from service.results import Outcome, Status

log = logging.getLogger(__name__)

# Objects per listing page (Cloud Storage returns at most 1,000).
PAGE_SIZE = 1000
# Ledger reads and publishes in flight at once within one page.
PAGE_CONCURRENCY = 32


class FanOut:
    def __init__(
        self,
        pipelines: PipelineSet,
        store: ObjectStore,
        ledger: IdempotencyStore,
        work: WorkPublisher,
        cursors: SweepCursors,
        *,
        page_size: int = PAGE_SIZE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.pipelines = pipelines
        self.store = store
        self.ledger = ledger
        self.work = work
        self.cursors = cursors
        self.page_size = page_size
        self.clock = clock

    async def sweep(self, event: SweepRequested) -> Outcome:
        event_id = event.meta.event_id
        pipeline = self.pipelines.get(event.pipeline)
        if pipeline is None:
            return Outcome(Status.IGNORED, event_id, "unknown pipeline")
        prefix = sweep_prefix(pipeline, event)
        key = sweep_key(event, pipeline, prefix)
        try:
            listed, published = await self._pages(pipeline, event, prefix, key)
        except TransientError as exc:
            return Outcome(Status.TRANSIENT, event_id, str(exc))
        log.info(
            "sweep of %s: listed %d objects under gs://%s/%s, published %d units",
            pipeline.name,
            listed,
            pipeline.bucket,
            prefix,
            published,
            extra={"event_id": event_id},
        )
        # The answer says counts only: the listing's names stay in the log.
        return Outcome(
            Status.PUBLISHED, event_id, "sweep fanned out", swept=listed, published=published
        )

    async def _pages(
        self, pipeline: Pipeline, event: SweepRequested, prefix: str, key: str
    ) -> tuple[int, int]:
        cursor = await self.cursors.get(key)
        resumed = cursor is not None and not cursor.done
        token = cursor.page_token if cursor is not None and resumed else None
        published = cursor.published if cursor is not None and resumed else 0
        if resumed:
            log.info("sweep of %s resumes after %d published", pipeline.name, published)
        listed = 0
        while True:
            page = await self.store.list_page(pipeline.bucket, prefix, token, self.page_size)
            objects = swept_objects(pipeline, event, page.objects, self.clock())
            listed += len(objects)
            published += await self._publish(pipeline, objects)
            token = page.next_token
            await self.cursors.put(SweepCursor(key, token, published, done=token is None))
            if token is None:
                return listed, published

    async def _publish(self, pipeline: Pipeline, objects: list[ObjectInfo]) -> int:
        """Publish the page's units the ledger has not finished; how many were published."""
        slots = asyncio.Semaphore(PAGE_CONCURRENCY)

        async def one(info: ObjectInfo) -> bool:
            async with slots:
                stored = await self.ledger.get(unit_key(pipeline, info.ref).digest)
                if not needs_work(stored.record.state if stored else None):
                    return False
                data, attributes = encode_work(pipeline.name, info)
                await self.work.publish(data, attributes)
                return True

        done = await asyncio.gather(*(one(info) for info in objects))
        return sum(done)
