"""The one place that composes the stages of a unit, concurrently, with bounded queues.

extract (event loop) -> feed -> parse (the unit's own thread) -> queue -> validate (worker
thread) -> queue -> spool (worker thread) -> load. Each stage is a task; the queues and the
shared byte budget bound memory; the first failure cancels the rest and is reported with the
stage's name and the unit. A unit whose rows need no transform may instead be loaded by the
warehouse straight from its gs:// URI (``uri_load``). A pipeline with ``load = "stream"``
appends its batches to a pending Write API stream instead of the spool (``stream_load``). How a
unit ends is ``endings``'s to say. The bounds on a unit's temporary files and reading time are
spool_budget's and deadline's, and reading the object (again, should the parse stage ask) is
reading's; this module only holds them in place.

Longer than 300 lines: the stage tasks, their one guard and the endings share the unit's state
(_Unit) and the attempt's clock; split, each part would need all of it. Each path (fast,
spooled, streamed) is a few lines of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol, TypeVar

import pyarrow as pa

from service.errors import (
    IngestError,
    NotFoundError,
    PermanentError,
    RowsRejected,
    StageError,
    TransientError,
)
from service.measures import NO_SPANS, UnitSpans
from service.models import EventMeta, LoadResult, ObjectInfo, UnitKey, UnitResult
from service.pipeline.batches import ParsedBatch, Reopen
from service.pipeline.budget import Allowance, ByteBudget
from service.pipeline.context import UnitContext
from service.pipeline.deadline import reading_deadline
from service.pipeline.definition import Pipeline
from service.pipeline.endings import Reject, Tally, loaded, rejection, verdict
from service.pipeline.load import load
from service.pipeline.parse import parse_batches
from service.pipeline.progress import Progress
from service.pipeline.quarantine import QuarantineSpool
from service.pipeline.reading import Reading
from service.pipeline.spool import ParquetSpool
from service.pipeline.spool_budget import SpoolAccount, SpoolBudget
from service.pipeline.stream_load import COMMITTING, StreamSink, resume
from service.pipeline.transform import Transformed, Transformer
from service.pipeline.uri_load import load_direct
from service.ports import ObjectStore, StreamJournal, StreamWriter, Warehouse

log = logging.getLogger(__name__)
T = TypeVar("T")

QUEUE_DEPTH = 2  # batches waiting between two stages
DEFAULT_BUFFER_BYTES = 64 * 1024 * 1024
DEFAULT_SPOOL_BYTES, DEFAULT_READ_SECONDS = 1024 * 1024 * 1024, 480.0  # settings.py says why


class _Sink(Protocol):
    async def write(self, batch: pa.RecordBatch) -> None: ...


class _StopReading(Exception):
    """The bad-row count is over the limit already: reading further cannot change the verdict."""


@dataclass
class _Unit:
    """One unit's state while its stages run."""

    ctx: UnitContext
    reading: Reading  # the object's feed, and the reads that fill it
    room: SpoolAccount  # the unit's temporary files
    quarantine: QuarantineSpool
    tally: Tally

    @property
    def allowance(self) -> Allowance:
        return self.reading.allowance


class Runner:
    def __init__(
        self,
        store: ObjectStore,
        warehouse: Warehouse,
        *,
        chunk_bytes: int,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        spool_bytes: int = DEFAULT_SPOOL_BYTES,
        read_seconds: float = DEFAULT_READ_SECONDS,
        streams: StreamWriter | None = None,
        spans: UnitSpans = NO_SPANS,
    ) -> None:
        self.store = store
        self.spans = spans  # the unit's span is the ingestor's; each stage's is opened here
        self.warehouse = warehouse
        self.streams = streams
        self.chunk_bytes = chunk_bytes
        self.budget = ByteBudget(buffer_bytes)
        self.spool_room = SpoolBudget(spool_bytes)
        self.read_seconds = read_seconds
        # Parses blocks of every unit's file; its jobs only compute, so sharing it is safe.
        self.blocks = ThreadPoolExecutor(os.cpu_count() or 2, thread_name_prefix="ingest-block")

    def close(self) -> None:
        """Let the block parsers' threads end (idle, they would hold the process at exit)."""
        self.blocks.shutdown(wait=False, cancel_futures=True)

    def context(
        self,
        key: UnitKey,
        pipeline: Pipeline,
        info: ObjectInfo,
        meta: EventMeta,
        progress: Progress | None = None,
        *,
        journal: StreamJournal | None = None,
    ) -> UnitContext:
        now = datetime.now(UTC)
        return UnitContext(key, pipeline, info, meta, now, progress or Progress(), journal=journal)

    async def run(self, ctx: UnitContext) -> UnitResult:
        """Run the unit once; the result (or the rejection's) carries this attempt's time."""
        started = time.perf_counter()
        try:
            return replace(await self._run(ctx), seconds=_since(started))
        except StageError as exc:
            if isinstance(exc.cause, RowsRejected):
                exc.cause.result = replace(exc.cause.result, seconds=_since(started))
            raise

    async def _run(self, ctx: UnitContext) -> UnitResult:
        journal = ctx.journal
        if ctx.pipeline.load == "stream":
            writer = await self._guard("load", ctx, self._stream_writer(journal))
            if journal is not None and journal.phase == COMMITTING:
                table = ctx.pipeline.output_table
                return await self._guard("load", ctx, resume(writer, journal, table))
        else:
            direct = await self._guard("load", ctx, load_direct(self.store, self.warehouse, ctx))
            if direct is not None:
                return direct
        if ctx.pipeline.format == "parquet":  # spooled whole before it is read: fail it early
            fits = asyncio.to_thread(self.spool_room.fits, ctx.object.size, "the Parquet file")
            await self._guard("extract", ctx, fits)
        tally, room = Tally(), self.spool_room.account()
        reading = Reading(self.store, ctx, self.chunk_bytes, self.budget, tally.timed)
        unit = _Unit(ctx, reading, room, QuarantineSpool(room), tally)
        try:
            return await self._streamed(unit, journal)
        finally:
            unit.quarantine.close()
            unit.allowance.release_all()
            room.release_all()

    # ---- the streaming path -----------------------------------------------------------------

    async def _stream_writer(self, journal: StreamJournal | None) -> StreamWriter:
        if self.streams is None or journal is None:
            raise PermanentError('load = "stream": this backend has no Write API')
        return self.streams

    async def _streamed(self, unit: _Unit, journal: StreamJournal | None) -> UnitResult:
        ctx = unit.ctx
        try:
            transformer = await self._guard("validate", ctx, asyncio.to_thread(Transformer, ctx))
            if ctx.pipeline.load == "stream" and self.streams is not None and journal:
                async with reading_deadline(self.read_seconds, ctx):
                    return await self._appended(unit, transformer, self.streams, journal)
            async with ParquetSpool(transformer.schema, room=unit.room) as spool:
                async with reading_deadline(self.read_seconds, ctx):
                    stopped = await self._stream(unit, transformer, spool)
                return await self._finish(unit, spool, stopped)
        except StageError as exc:
            if exc.transient or isinstance(exc.cause, RowsRejected):
                raise
            missing = isinstance(exc.cause, NotFoundError)
            ending = rejection(unit.tally, exc.stage, str(exc.cause), missing=missing)
            raise await self._reject(unit, ending) from exc

    async def _appended(
        self, unit: _Unit, transformer: Transformer, writer: StreamWriter, journal: StreamJournal
    ) -> UnitResult:
        """No spool: batches go from validation to a pending stream, committed at the end."""
        ctx = unit.ctx
        table = ctx.pipeline.output_table
        sink = await self._guard("load", ctx, StreamSink.open(writer, journal, table))
        try:
            stopped = await self._stream(unit, transformer, sink, "append")
            ending = verdict(unit.tally, ctx.pipeline, stopped=stopped)
            if isinstance(ending, Reject):
                raise await self._reject(unit, ending)
            quarantine = await self._guard(
                "quarantine", ctx, unit.quarantine.publish(self.store, ctx)
            )
            uri = quarantine.uri if quarantine else None
            rows = unit.tally.rows_valid
            result = loaded(unit.tally, LoadResult(sink.stream, rows), table.name, uri)
            started = time.perf_counter()
            done = await self._guard("load", ctx, sink.commit(table, journal, result))
            unit.tally.timed("load", time.perf_counter() - started)
            return replace(done, durations=unit.tally.durations)
        finally:
            with contextlib.suppress(IngestError):
                await sink.abandon()

    async def _stream(
        self, unit: _Unit, transformer: Transformer, spool: _Sink, stage: str = "spool"
    ) -> bool:
        """Runs the stages to the end of the file; True when reading stopped early."""
        ctx, reading = unit.ctx, unit.reading
        parsed: asyncio.Queue[ParsedBatch | None] = asyncio.Queue(QUEUE_DEPTH)
        checked: asyncio.Queue[tuple[Transformed, int] | None] = asyncio.Queue(QUEUE_DEPTH)
        parser = ThreadPoolExecutor(1, thread_name_prefix="ingest-parse")
        try:
            async with asyncio.TaskGroup() as group:
                reread = reading.start(group, lambda read: self._guard("extract", ctx, read))
                group.create_task(
                    self._guard("parse", ctx, self._parse(unit, parsed, parser, reread))
                )
                group.create_task(
                    self._guard("validate", ctx, self._validate(unit, transformer, parsed, checked))
                )
                group.create_task(self._guard(stage, ctx, self._spool(unit, spool, stage, checked)))
        except BaseExceptionGroup as group_error:
            first = _first_error(group_error)
            if isinstance(first, _StopReading):
                return True
            raise first from None
        finally:
            reading.feed.close()  # a parse thread waiting for data sees the end and returns
            parser.shutdown(wait=False)
        return False

    async def _parse(
        self,
        unit: _Unit,
        out: asyncio.Queue[ParsedBatch | None],
        parser: ThreadPoolExecutor,
        reread: Reopen,
    ) -> None:
        loop = asyncio.get_running_loop()
        reading = unit.reading
        batches = parse_batches(unit.ctx.pipeline, reading.feed, self.blocks, unit.room, reread)
        while True:
            started = time.perf_counter()
            item = await loop.run_in_executor(parser, next, batches, None)
            unit.tally.timed("parse", time.perf_counter() - started)
            unit.ctx.progress.advance("parse")
            if item is None and not reading.feed.ended:
                # Rows after this point would be lost, and extract would wait for room forever.
                raise PermanentError("the parser stopped before the end of the file")
            with unit.ctx.progress.waiting_for_room("parse"):
                await out.put(item)
            if item is None:
                return

    async def _validate(
        self,
        unit: _Unit,
        transformer: Transformer,
        source: asyncio.Queue[ParsedBatch | None],
        out: asyncio.Queue[tuple[Transformed, int] | None],
    ) -> None:
        tally, limit = unit.tally, unit.ctx.pipeline.bad_rows.max_count
        while (item := await source.get()) is not None:
            started = time.perf_counter()
            result = await asyncio.to_thread(transformer, item.batch, item.rows)
            bad = sorted(item.bad + result.bad, key=lambda b: b.row or 0)
            tally.rows_read += item.records
            tally.bad += len(bad)
            tally.reasons.update(b.kind for b in bad)
            tally.days |= result.days
            if bad:
                await asyncio.to_thread(unit.quarantine.add, bad)
            tally.timed("validate", time.perf_counter() - started)
            unit.ctx.progress.advance("validate", rows=item.records)
            with unit.ctx.progress.waiting_for_room("validate"):
                await out.put((result, item.raw_bytes))
            if limit is not None and tally.bad > limit:
                raise _StopReading
        await out.put(None)

    async def _spool(
        self,
        unit: _Unit,
        spool: _Sink,
        stage: str,
        source: asyncio.Queue[tuple[Transformed, int] | None],
    ) -> None:
        while (item := await source.get()) is not None:
            result, raw_bytes = item
            started = time.perf_counter()
            await spool.write(result.batch)
            unit.tally.rows_valid += result.batch.num_rows
            unit.allowance.release(raw_bytes)
            unit.tally.timed(stage, time.perf_counter() - started)
            unit.ctx.progress.advance(stage)

    # ---- endings ----------------------------------------------------------------------------

    async def _finish(self, unit: _Unit, spool: ParquetSpool, stopped: bool) -> UnitResult:
        ctx, tally = unit.ctx, unit.tally
        ending = verdict(tally, ctx.pipeline, stopped=stopped)
        if isinstance(ending, Reject):
            raise await self._reject(unit, ending)
        path = await spool.finish()
        started = time.perf_counter()
        table = ctx.pipeline.output_table
        with ctx.progress.probing(lambda: self.warehouse.load_running(ctx.job_id)):
            loading = load(self.warehouse, ctx, path, table, ending.day)
            done = await self._guard("load", ctx, loading)
        tally.timed("load", time.perf_counter() - started)
        if done.rows_loaded != tally.rows_valid:
            log.warning(
                "unit %s: job %s loaded %d rows, this run validated %d",
                ctx.key,
                done.job_id,
                done.rows_loaded,
                tally.rows_valid,
            )
        quarantine = await self._guard("quarantine", ctx, unit.quarantine.publish(self.store, ctx))
        uri = quarantine.uri if quarantine else None
        return loaded(tally, done, ctx.pipeline.table.name, uri)

    async def _reject(self, unit: _Unit, ending: Reject) -> StageError:
        """The rejection as the stage's error, after the quarantine object (with the reason)."""
        ctx = unit.ctx
        quarantine = None
        if ending.quarantine:
            publish = unit.quarantine.publish(self.store, ctx, ending.reason)
            quarantine = await self._guard("quarantine", ctx, publish)
        uri = quarantine.uri if quarantine else None
        result = ending.result(ctx.pipeline.table.name, uri, unit.tally)
        rejected = RowsRejected(ending.reason, result, ending.public)
        return StageError(ending.stage, str(ctx.key), rejected)

    async def _guard(self, stage: str, ctx: UnitContext, work: Awaitable[T]) -> T:
        try:
            with self.spans.stage(stage), ctx.progress.working(stage):
                return await work
        except (StageError, _StopReading):
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


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 6)


def _first_error(group_error: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error that started the failure (others are the cancellations it caused)."""
    leaves = _leaves(group_error)
    for kind in (StageError, _StopReading):
        found = [e for e in leaves if isinstance(e, kind)]
        if found:
            return found[0]
    return leaves[0]


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for sub in error.exceptions for leaf in _leaves(sub)]
    return [error]
