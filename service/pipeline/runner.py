"""The one place that composes the stages of a unit, concurrently, with bounded queues.

extract (async) -> feed queue -> parse (worker thread) -> batch queue -> validate (thread pool)
-> spool (thread) -> load. Each stage is a task; the queues bound memory; the first failure
cancels the rest and is reported with the stage's name and the unit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import pyarrow as pa

from service.errors import IngestError, PermanentError, StageError, TransientError
from service.models import EventMeta, ObjectInfo, UnitKey, UnitResult
from service.pipeline.config import Pipeline
from service.pipeline.context import BadRow, UnitContext
from service.pipeline.extract import extract
from service.pipeline.load import ParquetSpool, load, write_quarantine
from service.pipeline.parse import Feed, ParsedBatch, parse_batches
from service.pipeline.transform import Transformed, Transformer
from service.ports import ObjectStore, Warehouse

log = logging.getLogger(__name__)
T = TypeVar("T")

QUEUE_DEPTH = 4
_END = object()


@dataclass
class Tally:
    rows_read: int = 0
    rows_loaded: int = 0
    bad: list[BadRow] = field(default_factory=list)
    durations: dict[str, float] = field(default_factory=dict)

    def timed(self, stage: str, seconds: float) -> None:
        self.durations[stage] = round(self.durations.get(stage, 0.0) + seconds, 6)


class RowsRejected(PermanentError):
    """Too many bad rows: the file is rejected whole (its bad rows are in the quarantine)."""

    def __init__(self, message: str, result: UnitResult) -> None:
        super().__init__(message)
        self.result = result


class Runner:
    def __init__(self, store: ObjectStore, warehouse: Warehouse, *, chunk_bytes: int) -> None:
        self.store = store
        self.warehouse = warehouse
        self.chunk_bytes = chunk_bytes

    def context(
        self, key: UnitKey, pipeline: Pipeline, info: ObjectInfo, meta: EventMeta
    ) -> UnitContext:
        return UnitContext(key, pipeline, info, meta, datetime.now(UTC))

    async def run(self, ctx: UnitContext) -> UnitResult:
        tally = Tally()
        transformer = Transformer(ctx)
        async with ParquetSpool(transformer.schema) as spool:
            await self._stream(ctx, transformer, spool, tally)
            return await self._finish(ctx, spool, tally)

    async def _stream(
        self, ctx: UnitContext, transformer: Transformer, spool: ParquetSpool, tally: Tally
    ) -> None:
        feed = Feed(QUEUE_DEPTH)
        parsed: asyncio.Queue[object] = asyncio.Queue(QUEUE_DEPTH)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._guard("extract", ctx, self._extract(ctx, feed, tally)))
                group.create_task(
                    self._guard("parse", ctx, self._parse(ctx, feed, parsed, loop, tally))
                )
                group.create_task(
                    self._guard("validate", ctx, self._validate(parsed, transformer, spool, tally))
                )
        except BaseExceptionGroup as group_error:
            raise _first_stage_error(group_error) from None
        finally:
            _unblock(feed)

    async def _extract(self, ctx: UnitContext, feed: Feed, tally: Tally) -> None:
        started = time.perf_counter()
        try:
            async for chunk in extract(self.store, ctx, self.chunk_bytes):
                await asyncio.to_thread(feed.chunks.put, chunk)
        finally:
            await asyncio.to_thread(feed.chunks.put, None)
            tally.timed("extract", time.perf_counter() - started)

    async def _parse(
        self,
        ctx: UnitContext,
        feed: Feed,
        out: asyncio.Queue[object],
        loop: asyncio.AbstractEventLoop,
        tally: Tally,
    ) -> None:
        def work() -> None:
            try:
                for batch in parse_batches(ctx.pipeline, feed):
                    asyncio.run_coroutine_threadsafe(out.put(batch), loop).result()
            finally:
                asyncio.run_coroutine_threadsafe(out.put(_END), loop).result()

        started = time.perf_counter()
        await asyncio.to_thread(work)
        tally.timed("parse", time.perf_counter() - started)

    async def _validate(
        self,
        parsed: asyncio.Queue[object],
        transformer: Transformer,
        spool: ParquetSpool,
        tally: Tally,
    ) -> None:
        while (item := await parsed.get()) is not _END:
            assert isinstance(item, ParsedBatch)
            started = time.perf_counter()
            result: Transformed = await asyncio.to_thread(transformer, item.batch, item.first_row)
            tally.rows_read += result.rows_in + len(item.bad)
            tally.bad.extend(item.bad)
            tally.bad.extend(result.bad)
            await spool.write(result.batch)
            tally.rows_loaded += result.batch.num_rows
            tally.timed("validate", time.perf_counter() - started)

    async def _finish(self, ctx: UnitContext, spool: ParquetSpool, tally: Tally) -> UnitResult:
        policy = ctx.pipeline.bad_rows
        rejected = policy.exceeded(len(tally.bad), tally.rows_read)
        reason = (
            f"{len(tally.bad)} bad rows of {tally.rows_read} exceed the pipeline's threshold"
            if rejected
            else None
        )
        quarantine = await self._guard(
            "quarantine", ctx, write_quarantine(self.store, ctx, tally.bad, reason)
        )
        result = UnitResult(
            rows_read=tally.rows_read,
            rows_loaded=0 if rejected else tally.rows_loaded,
            rows_quarantined=tally.rows_read if rejected else len(tally.bad),
            table=ctx.pipeline.table.name,
            quarantine_uri=quarantine.uri if quarantine else None,
            durations=tally.durations,
        )
        if reason is not None:
            raise StageError("validate", str(ctx.key), RowsRejected(reason, result))
        path = await spool.finish()
        started = time.perf_counter()
        loading = load(self.warehouse, ctx, path, ctx.pipeline.output_table)
        loaded = await self._guard("load", ctx, loading)
        tally.timed("load", time.perf_counter() - started)
        return UnitResult(
            rows_read=result.rows_read,
            rows_loaded=loaded.rows_loaded,
            rows_quarantined=result.rows_quarantined,
            job_id=loaded.job_id,
            table=result.table,
            quarantine_uri=result.quarantine_uri,
            durations=tally.durations,
        )

    async def _guard(self, stage: str, ctx: UnitContext, work: Awaitable[T]) -> T:
        try:
            return await work
        except StageError:
            raise
        except IngestError as exc:
            raise StageError(stage, str(ctx.key), exc) from exc
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeError) as exc:
            raise StageError(stage, str(ctx.key), PermanentError(str(exc))) from exc
        except Exception as exc:
            # Unknown failures are retried; the dead-letter policy bounds how often.
            log.exception("unit %s: unexpected failure in stage %s", ctx.key, stage)
            cause = TransientError(f"{type(exc).__name__}: {exc}")
            raise StageError(stage, str(ctx.key), cause) from exc


def _first_stage_error(group_error: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error that started the failure (others are the cancellations it caused)."""
    stage_errors = [e for e in _leaves(group_error) if isinstance(e, StageError)]
    if stage_errors:
        return stage_errors[0]
    return next(iter(_leaves(group_error)))


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for sub in error.exceptions for leaf in _leaves(sub)]
    return [error]


def _unblock(feed: Feed) -> None:
    """Let a parse thread blocked on an empty feed see the end (after a failure elsewhere)."""
    try:
        feed.chunks.put_nowait(None)
    except queue.Full:
        with contextlib.suppress(queue.Empty):
            while True:
                feed.chunks.get_nowait()
        feed.chunks.put_nowait(None)
