"""A unit's reading of its object: the feed the parse thread takes chunks from, filled by an
extract task, and the object read again from its start when the parse stage asks for it (its
one streamed pass of a CSV stopped: csv_stream's ``Reread``).

Every read runs in the unit's task group under the runner's guard, in the unit's context (its
trace), even when the parse thread asks for it. A second read gives the old feed up: its
extract stops at its next chunk, and the bytes the feed holds go back to the unit's allowance.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import Callable, Coroutine
from typing import Any

from service.pipeline.batches import Reopen
from service.pipeline.budget import ByteBudget
from service.pipeline.context import UnitContext
from service.pipeline.extract import extract
from service.pipeline.feed import Feed
from service.ports import ObjectStore

FEED_DEPTH = 4  # chunks waiting for the parser
REOPEN_SECONDS = 60.0  # the parse thread waits this long for the event loop to read again
# One read of the object into a feed, and the same wrapped in the runner's stage guard.
Read = Coroutine[Any, Any, None]
Guard = Callable[[Read], Read]


class Reading:
    """On the event loop: the current feed, the unit's allowance of the byte budget, and the
    reads that fill the feed."""

    def __init__(
        self,
        store: ObjectStore,
        ctx: UnitContext,
        chunk_bytes: int,
        budget: ByteBudget,
        timed: Callable[[str, float], None],
    ) -> None:
        self._store, self._ctx, self._chunk_bytes = store, ctx, chunk_bytes
        self._budget, self._timed = budget, timed
        self.feed = Feed(asyncio.get_running_loop(), FEED_DEPTH, on_starve=budget.wake)
        self.allowance = budget.allowance(lambda: self.feed.starved)
        self.feed.on_settle = self.allowance.release

    async def extract(self, feed: Feed) -> None:
        """Puts the object's chunks in ``feed``, each once the budget has room for it."""
        started = time.perf_counter()
        progress = self._ctx.progress
        try:
            chunks = extract(self._store, self._ctx, self._chunk_bytes)
            async with contextlib.aclosing(chunks) as read:
                async for chunk in read:
                    with progress.waiting_for_room("extract"):
                        await self.allowance.acquire(len(chunk))
                        if not await feed.put(chunk):
                            self.allowance.release(len(chunk))
                            return  # the parser reads the object again, through a new feed
                    progress.advance("extract", nbytes=len(chunk))
        finally:
            feed.close()
            self._timed("extract", time.perf_counter() - started)

    def start(self, group: asyncio.TaskGroup, guard: Guard) -> Reopen:
        """Starts the first read in ``group``; returns the parse thread's way to read again."""
        loop = asyncio.get_running_loop()
        unit_context = contextvars.copy_context()

        def begin(feed: Feed) -> None:
            read = self.extract(feed)
            guarded = guard(read)
            try:
                group.create_task(guarded, context=unit_context.copy())
            except RuntimeError:  # the unit is failing already: the group takes no new task
                guarded.close()
                read.close()
                raise

        async def again(unsettled: int) -> Feed:
            old = self.feed
            new = Feed(loop, FEED_DEPTH, self.allowance.release, self._budget.wake)
            begin(new)
            self.allowance.release(unsettled + old.abandon())
            self._ctx.progress.read_again(old.taken)
            self.feed = new
            return new

        def reread(unsettled: int) -> Feed:
            return asyncio.run_coroutine_threadsafe(again(unsettled), loop).result(REOPEN_SECONDS)

        begin(self.feed)
        return reread
