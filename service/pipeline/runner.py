"""The one place that composes the stages of a unit, concurrently, with bounded queues.

extract (event loop) -> feed -> parse (the unit's own thread) -> queue -> validate (worker
thread) -> queue -> spool (worker thread) -> load. Each stage is a task; the queues and the
shared byte budget bound memory; the first failure cancels the rest and is reported with the
stage's name and the unit. A unit whose rows need no transform may instead be loaded by the
warehouse straight from its gs:// URI.

Every ending is defined: loaded (rows read = loaded + quarantined), rejected whole
(``RowsRejected``: too many bad rows, or a file-level fault such as a truncated gzip or a table
with another schema; all rows read count as quarantined, loaded is 0), or a transient failure
to retry. The ledger records the counts of the first two.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TypeVar

import pyarrow as pa

from service.errors import IngestError, PermanentError, StageError, TransientError
from service.models import EventMeta, ObjectInfo, UnitKey, UnitResult
from service.pipeline.batches import ParsedBatch
from service.pipeline.budget import Allowance, ByteBudget
from service.pipeline.config import Pipeline
from service.pipeline.context import UnitContext
from service.pipeline.csv_format import header_names
from service.pipeline.extract import extract
from service.pipeline.feed import Feed
from service.pipeline.load import (
    ParquetSpool,
    QuarantineSpool,
    load,
    load_generation,
    uri_source,
)
from service.pipeline.parse import parse_batches
from service.pipeline.transform import Transformed, Transformer, partition_day_of
from service.ports import GenerationCopier, ObjectStore, UriLoader, Warehouse

log = logging.getLogger(__name__)
T = TypeVar("T")

QUEUE_DEPTH = 2  # batches waiting between two stages
FEED_DEPTH = 4  # chunks waiting for the parser
DEFAULT_BUFFER_BYTES = 64 * 1024 * 1024
# Stages whose failure means the file was not read to its end.
UNREADABLE_STAGES = frozenset({"extract", "parse"})


@dataclass
class Tally:
    rows_read: int = 0
    rows_valid: int = 0
    bad: int = 0
    days: set[date] = field(default_factory=set)
    durations: dict[str, float] = field(default_factory=dict)

    def timed(self, stage: str, seconds: float) -> None:
        self.durations[stage] = round(self.durations.get(stage, 0.0) + seconds, 6)


class RowsRejected(PermanentError):
    """The file is rejected whole: too many bad rows, or a fault in the file or its table."""

    def __init__(self, message: str, result: UnitResult) -> None:
        super().__init__(message)
        self.result = result


class _StopReading(Exception):
    """The bad-row count is over the limit already: reading further cannot change the verdict."""


@dataclass
class _Unit:
    """One unit's state while its stages run."""

    ctx: UnitContext
    feed: Feed
    allowance: Allowance
    quarantine: QuarantineSpool = field(default_factory=QuarantineSpool)
    tally: Tally = field(default_factory=Tally)


class Runner:
    def __init__(
        self,
        store: ObjectStore,
        warehouse: Warehouse,
        *,
        chunk_bytes: int,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
    ) -> None:
        self.store = store
        self.warehouse = warehouse
        self.chunk_bytes = chunk_bytes
        self.budget = ByteBudget(buffer_bytes)
        # Parses blocks of every unit's file; its jobs only compute, so sharing it is safe.
        self.blocks = ThreadPoolExecutor(os.cpu_count() or 2, thread_name_prefix="ingest-block")

    def context(
        self, key: UnitKey, pipeline: Pipeline, info: ObjectInfo, meta: EventMeta
    ) -> UnitContext:
        return UnitContext(key, pipeline, info, meta, datetime.now(UTC))

    async def run(self, ctx: UnitContext) -> UnitResult:
        direct = await self._guard("load", ctx, self._direct(ctx))
        if direct is not None:
            return direct
        feed = Feed(asyncio.get_running_loop(), FEED_DEPTH, on_starve=self.budget.wake)
        unit = _Unit(ctx, feed, self.budget.allowance(lambda: feed.starved))
        try:
            return await self._streamed(unit)
        finally:
            unit.quarantine.close()
            unit.allowance.release_all()

    # ---- the gs:// fast path ----------------------------------------------------------------

    async def _direct(self, ctx: UnitContext) -> UnitResult | None:
        source = uri_source(ctx, self.warehouse)
        store, warehouse = self.store, self.warehouse
        if source is None or not isinstance(warehouse, UriLoader):
            return None
        if not isinstance(store, GenerationCopier):
            return None  # a load URI cannot name the event's generation: stream it
        started = time.perf_counter()
        try:
            if ctx.pipeline.format == "csv" and not await self._header_in_order(ctx):
                return None
            day = partition_day_of(ctx)
            loaded = await load_generation(store, warehouse, ctx, source, day)
        except PermanentError as exc:
            # The stream path will say exactly which rows are bad (or fail the same way).
            log.warning("unit %s: direct load refused (%s); streaming instead", ctx.key, exc)
            return None
        took = {"load": round(time.perf_counter() - started, 6)}
        rows = loaded.rows_loaded
        return UnitResult(rows, rows, 0, loaded.job_id, ctx.pipeline.table.name, None, took)

    async def _header_in_order(self, ctx: UnitContext) -> bool:
        """BigQuery maps CSV columns by position: the header must list the schema in order."""
        opts = ctx.pipeline.csv
        if not opts.header:
            return True
        head = b""
        reader = self.store.read(ctx.object.ref, 64 * 1024)
        try:
            async for chunk in reader:
                head += chunk
                if head.count(b"\n") > opts.skip_rows or len(head) > 1024 * 1024:
                    break
        finally:
            close = getattr(reader, "aclose", None)
            if close is not None:
                await close()
        names = header_names(head + b"\n", opts)
        return names == [c.name for c in ctx.pipeline.table.columns]

    # ---- the streaming path -----------------------------------------------------------------

    async def _streamed(self, unit: _Unit) -> UnitResult:
        ctx = unit.ctx
        try:
            transformer = await self._guard("validate", ctx, asyncio.to_thread(Transformer, ctx))
            async with ParquetSpool(transformer.schema) as spool:
                stopped = await self._stream(unit, transformer, spool)
                return await self._finish(unit, spool, stopped)
        except StageError as exc:
            if exc.transient or isinstance(exc.cause, RowsRejected):
                raise
            # A file that cannot be read whole has no row counts: only the reason is kept.
            whole = exc.stage not in UNREADABLE_STAGES
            raise await self._reject(unit, exc.stage, str(exc.cause), whole=whole) from exc

    async def _stream(self, unit: _Unit, transformer: Transformer, spool: ParquetSpool) -> bool:
        """Runs the stages to the end of the file; True when reading stopped early."""
        ctx = unit.ctx
        feed = unit.feed
        feed.on_settle = unit.allowance.release
        parsed: asyncio.Queue[ParsedBatch | None] = asyncio.Queue(QUEUE_DEPTH)
        checked: asyncio.Queue[tuple[Transformed, int] | None] = asyncio.Queue(QUEUE_DEPTH)
        parser = ThreadPoolExecutor(1, thread_name_prefix="ingest-parse")
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._guard("extract", ctx, self._extract(unit, feed)))
                group.create_task(
                    self._guard("parse", ctx, self._parse(unit, feed, parsed, parser))
                )
                group.create_task(
                    self._guard("validate", ctx, self._validate(unit, transformer, parsed, checked))
                )
                group.create_task(self._guard("spool", ctx, self._spool(unit, spool, checked)))
        except BaseExceptionGroup as group_error:
            first = _first_error(group_error)
            if isinstance(first, _StopReading):
                return True
            raise first from None
        finally:
            feed.close()  # a parse thread waiting for data sees the end and returns
            parser.shutdown(wait=False)
        return False

    async def _extract(self, unit: _Unit, feed: Feed) -> None:
        started = time.perf_counter()
        try:
            async for chunk in extract(self.store, unit.ctx, self.chunk_bytes):
                await unit.allowance.acquire(len(chunk))
                await feed.put(chunk)
        finally:
            feed.close()
            unit.tally.timed("extract", time.perf_counter() - started)

    async def _parse(
        self,
        unit: _Unit,
        feed: Feed,
        out: asyncio.Queue[ParsedBatch | None],
        parser: ThreadPoolExecutor,
    ) -> None:
        loop = asyncio.get_running_loop()
        batches = parse_batches(unit.ctx.pipeline, feed, self.blocks)
        while True:
            started = time.perf_counter()
            item = await loop.run_in_executor(parser, next, batches, None)
            unit.tally.timed("parse", time.perf_counter() - started)
            if item is None and not feed.ended:
                # Rows after this point would be lost, and extract would wait for room forever.
                raise PermanentError("the parser stopped before the end of the file")
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
            tally.days |= result.days
            if bad:
                await asyncio.to_thread(unit.quarantine.add, bad)
            tally.timed("validate", time.perf_counter() - started)
            await out.put((result, item.raw_bytes))
            if limit is not None and tally.bad > limit:
                raise _StopReading
        await out.put(None)

    async def _spool(
        self,
        unit: _Unit,
        spool: ParquetSpool,
        source: asyncio.Queue[tuple[Transformed, int] | None],
    ) -> None:
        while (item := await source.get()) is not None:
            result, raw_bytes = item
            started = time.perf_counter()
            await spool.write(result.batch)
            unit.tally.rows_valid += result.batch.num_rows
            unit.allowance.release(raw_bytes)
            unit.tally.timed("spool", time.perf_counter() - started)

    # ---- endings ----------------------------------------------------------------------------

    async def _finish(self, unit: _Unit, spool: ParquetSpool, stopped: bool) -> UnitResult:
        ctx, tally = unit.ctx, unit.tally
        policy = ctx.pipeline.bad_rows
        if stopped or policy.exceeded(tally.bad, tally.rows_read):
            where = f" (reading stopped at row {tally.rows_read})" if stopped else ""
            reason = f"{tally.bad} bad rows of {tally.rows_read} exceed the pipeline's threshold"
            raise await self._reject(unit, "validate", reason + where)
        day = self._partition(unit)
        path = await spool.finish()
        started = time.perf_counter()
        table = ctx.pipeline.output_table
        loaded = await self._guard("load", ctx, load(self.warehouse, ctx, path, table, day))
        tally.timed("load", time.perf_counter() - started)
        if loaded.rows_loaded != tally.rows_valid:
            log.warning(
                "unit %s: job %s loaded %d rows, this run validated %d",
                ctx.key,
                loaded.job_id,
                loaded.rows_loaded,
                tally.rows_valid,
            )
        quarantine = await self._guard("quarantine", ctx, unit.quarantine.publish(self.store, ctx))
        return UnitResult(
            rows_read=tally.rows_read,
            rows_loaded=loaded.rows_loaded,
            rows_quarantined=tally.bad,
            job_id=loaded.job_id,
            table=ctx.pipeline.table.name,
            quarantine_uri=quarantine.uri if quarantine else None,
            durations=tally.durations,
        )

    def _partition(self, unit: _Unit) -> date | None:
        """The partition a replace-partition pipeline overwrites, once all rows are seen."""
        p = unit.ctx.pipeline
        if p.write_mode != "replace_partition":
            return None
        days = sorted(unit.tally.days)
        if len(days) > 1:
            raise StageError(
                "validate",
                str(unit.ctx.key),
                PermanentError(f"the file spans {len(days)} partitions; it may replace only one"),
            )
        return days[0] if days else None

    async def _reject(
        self, unit: _Unit, stage: str, reason: str, *, whole: bool = True
    ) -> StageError:
        """Reject the file: every row read counts as quarantined, none is loaded.

        ``whole`` is False when the file could not be read to its end (a truncated gzip, a
        corrupt Parquet footer): then there are no row counts (they would depend on how far the
        stages got) and no quarantine object; the ledger keeps the reason.
        """
        ctx, tally = unit.ctx, unit.tally
        read = tally.rows_read if whole else 0
        quarantine = None
        if read or (whole and tally.bad):
            publish = unit.quarantine.publish(self.store, ctx, reason)
            quarantine = await self._guard("quarantine", ctx, publish)
        result = UnitResult(
            rows_read=read,
            rows_loaded=0,
            rows_quarantined=read,
            table=ctx.pipeline.table.name,
            quarantine_uri=quarantine.uri if quarantine else None,
            durations=tally.durations,
        )
        return StageError(stage, str(ctx.key), RowsRejected(reason, result))

    async def _guard(self, stage: str, ctx: UnitContext, work: Awaitable[T]) -> T:
        try:
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
