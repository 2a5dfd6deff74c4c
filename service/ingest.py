"""The use case: one typed event in, one outcome out. Knows the ledger and the runner only.

Longer than 300 lines: a unit's claim, run, watchdog, recorded ending and announcement are one
sequence of ledger writes fenced by the same lease; split, each part would pass the lease, the
claim and the unit's key back and forth. The values it produces live in ``service.results``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from service.content import (
    filled_in,
    fingerprint,
    object_agrees,
    same_content,
    same_content_reason,
)
from service.errors import (
    IngestError,
    LeaseLostError,
    NotFoundError,
    PermanentError,
    RowsRejected,
    StageError,
    TransientError,
)
from service.ledger import (
    AlreadyDone,
    AlreadyFailed,
    Busy,
    Claimed,
    FingerprintMismatch,
    Ledger,
)
from service.logs import log_context
from service.measures import NO_METRICS, UnitMetrics
from service.models import (
    Event,
    EventMeta,
    Ignored,
    LedgerRecord,
    ObjectFinalized,
    ObjectInfo,
    SweepRequested,
    UnitKey,
    UnitRequested,
    UnitResult,
)
from service.outcomes import DiscardOutcomes, unit_ended
from service.pipeline.context import derived_job_id
from service.pipeline.definition import Pipeline, PipelineSet
from service.pipeline.endings import MISSING
from service.pipeline.progress import Board, Progress
from service.pipeline.runner import Runner
from service.plans import sweep_prefix, swept_objects, unit_key
from service.ports import ObjectStore, OutcomePublisher
from service.results import UNIT_LOG_LEVEL, Outcome, Status, UnitOutcome, combine
from service.stream_journal import LedgerJournal
from service.watchdog import Watchdog

if TYPE_CHECKING:
    from service.fanout import FanOut

log = logging.getLogger(__name__)


class Ingestor:
    def __init__(
        self,
        pipelines: PipelineSet,
        store: ObjectStore,
        ledger: Ledger,
        runner: Runner,
        *,
        renew_every_seconds: float,
        stall_seconds: float,
        max_units_in_flight: int,
        outcomes: OutcomePublisher | None = None,
        fanout: FanOut | None = None,
        metrics: UnitMetrics | None = None,
    ) -> None:
        self.pipelines = pipelines
        self.outcomes: OutcomePublisher = outcomes or DiscardOutcomes()
        self.store = store
        self.ledger = ledger
        self.runner = runner
        self.renew_every = renew_every_seconds
        self.stall_seconds = stall_seconds
        self.slots = asyncio.Semaphore(max_units_in_flight)
        self.max_units_in_flight = max_units_in_flight
        # Work messages admitted and not yet ended: past the slots, one is answered busy (429).
        self.admitted = 0
        # Sweeps list and publish work here; without it a sweep runs its units in-request.
        self.fanout = fanout
        self.metrics: UnitMetrics = metrics or NO_METRICS
        self.claim_slots = asyncio.Semaphore(max(64, max_units_in_flight * 16))
        # Shutdown: ``draining`` starts no new unit; ``abandon`` cancels the running ones.
        self.draining = False
        self._abandoning = False
        self._running: set[asyncio.Task[Any]] = set()
        self.board = Board()  # the running units' progress, for a terminal to show

    async def handle(self, event: Event, *, force: bool = False) -> Outcome:
        if isinstance(event, Ignored):
            return Outcome(Status.IGNORED, event.meta.event_id, event.reason)
        if isinstance(event, SweepRequested):
            # A forced sweep re-runs finished units: it runs them here, where force was allowed.
            if self.fanout is not None and not force:
                return await self.fanout.sweep(event)
            return await self.sweep(event, force=force)
        if isinstance(event, UnitRequested):
            return await self._requested(event, force=force)
        return await self._object(event, force=force)

    async def _requested(self, event: UnitRequested, *, force: bool) -> Outcome:
        """One unit a sweep published. With every slot taken it is answered busy at once, so
        Pub/Sub offers it again, perhaps to an instance with a slot free."""
        pipeline = self.pipelines.get(event.pipeline)
        ref = event.object.ref
        if pipeline is None or not pipeline.matches(ref.bucket, ref.name):
            return Outcome(Status.IGNORED, event.meta.event_id, "no such pipeline for the object")
        if self.slots.locked() or self.admitted >= self.max_units_in_flight:
            self.metrics.refused(pipeline.name)
            return Outcome(Status.BUSY, event.meta.event_id, "every unit slot is busy")
        self.admitted += 1
        try:
            unit = await self.run_unit(pipeline, event.object, event.meta, force=force)
        finally:
            self.admitted -= 1
        return combine(event.meta.event_id, [unit])

    async def _object(self, event: ObjectFinalized, *, force: bool) -> Outcome:
        ref = event.object.ref
        matching = self.pipelines.matching(ref.bucket, ref.name)
        if not matching:
            return Outcome(Status.IGNORED, event.meta.event_id, "no pipeline matches the object")
        units = await asyncio.gather(
            *(self.run_unit(p, event.object, event.meta, force=force) for p in matching)
        )
        return combine(event.meta.event_id, list(units))

    async def sweep(self, event: SweepRequested, *, force: bool = False) -> Outcome:
        pipeline = self.pipelines.get(event.pipeline)
        if pipeline is None:
            return Outcome(Status.IGNORED, event.meta.event_id, "unknown pipeline")
        prefix = sweep_prefix(pipeline, event)
        try:
            listed = await self.store.list(pipeline.bucket, prefix)
        except TransientError as exc:
            return Outcome(Status.TRANSIENT, event.meta.event_id, str(exc))
        objects = swept_objects(pipeline, event, listed, datetime.now(UTC))
        # Every unit waits for one of the global slots: the sweep's concurrency is bounded.
        units = await asyncio.gather(
            *(self.run_unit(pipeline, o, event.meta, force=force) for o in objects)
        )
        outcome = combine(event.meta.event_id, list(units), f"swept {len(objects)} objects")
        return replace(outcome, swept=len(objects))

    async def run_unit(
        self, pipeline: Pipeline, info: ObjectInfo, meta: EventMeta, *, force: bool = False
    ) -> UnitOutcome:
        key = unit_key(pipeline, info.ref)
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            with (
                log_context(event_id=meta.event_id, unit=key, pipeline=pipeline.name),
                self.runner.spans.unit(pipeline.name, str(key)),
                self.metrics.unit(pipeline.name, meta) as measured,
            ):
                outcome = await self._run_unit(key, pipeline, info, meta, force=force)
                log_outcome(outcome)
                measured.ended(outcome)
                return outcome
        finally:
            self._running.discard(task)

    async def _run_unit(
        self, key: UnitKey, pipeline: Pipeline, info: ObjectInfo, meta: EventMeta, *, force: bool
    ) -> UnitOutcome:
        try:
            # Claims are cheap and bounded loosely; only the work itself takes a unit slot, so
            # duplicate deliveries are answered at once even while every slot is busy.
            async with self.claim_slots:
                if self.draining:
                    return UnitOutcome(str(key), Status.TRANSIENT, error="shutting down")
                return await self._claim_and_run(key, pipeline, info, meta, force=force)
        except TransientError as exc:
            return UnitOutcome(str(key), Status.TRANSIENT, error=str(exc))
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self._abandoning or task is None:
                raise
            task.uncancel()  # our own shutdown cancelled it: answer "retry" instead
            return UnitOutcome(str(key), Status.TRANSIENT, error="given up at shutdown")

    async def abandon(self, wait_seconds: float) -> int:
        """Cancel the units still running (shutdown); each releases its lease as it stops."""
        self.draining = True
        self._abandoning = True
        running = [task for task in self._running if not task.done()]
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=wait_seconds)
        return len(running)

    async def _claim_and_run(
        self, key: UnitKey, pipeline: Pipeline, info: ObjectInfo, meta: EventMeta, *, force: bool
    ) -> UnitOutcome:
        job_id = derived_job_id(key, pipeline)
        claim = await self.ledger.claim(
            key,
            fingerprint(info),
            event_id=meta.event_id,
            force=force,
            job_id=job_id,
            crc32c=info.crc32c_base64,
        )
        if isinstance(claim, FingerprintMismatch) and await object_agrees(self.store, info):
            claim = await self.ledger.claim(
                key, fingerprint(info), event_id=meta.event_id, object_agrees=True, job_id=job_id
            )
        unit = str(key)
        if isinstance(claim, AlreadyDone):
            result = claim.record.result
            loaded = result.rows_loaded if result else 0
            quarantined = result.rows_quarantined if result else 0
            same = result.same_content_as if result else None
            reason = None if same is None else same_content_reason(same)
            return UnitOutcome(unit, Status.DUPLICATE, loaded, quarantined, reason=reason)
        if isinstance(claim, AlreadyFailed):
            return UnitOutcome(unit, Status.DUPLICATE, error=claim.record.error)
        if isinstance(claim, Busy):
            return UnitOutcome(unit, Status.BUSY, error="in progress elsewhere")
        if isinstance(claim, FingerprintMismatch):
            refused = "same unit, different content: refused"
            return UnitOutcome(unit, Status.FAILED, error=refused, public_reason=refused)
        assert isinstance(claim, Claimed)
        if pipeline.skip_same_content and not (force or claim.takeover):
            repeated = await self._repeated(claim, key, pipeline, info)
            if repeated is not None:
                return repeated
        return await self._execute(claim, key, pipeline, info, meta)

    async def _repeated(
        self, claim: Claimed, key: UnitKey, pipeline: Pipeline, info: ObjectInfo
    ) -> UnitOutcome | None:
        """A new generation with the bytes of the name's last completed one: recorded as
        completed with nothing loaded, answered duplicate. None: run the unit."""
        try:
            earlier = await self.ledger.last_completed(key)
        except TransientError:
            await self._release(claim.lease)
            raise
        if earlier is None or not same_content(earlier, info):
            return None
        result = UnitResult(table=pipeline.table.name, same_content_as=earlier.generation)
        await self.ledger.complete(claim.lease, result)
        reason = same_content_reason(earlier.generation)
        return UnitOutcome(str(key), Status.DUPLICATE, reason=reason)

    async def _execute(
        self, claim: Claimed, key: UnitKey, pipeline: Pipeline, info: ObjectInfo, meta: EventMeta
    ) -> UnitOutcome:
        unit = str(key)
        watchdog = Watchdog(Progress(), self.stall_seconds)
        try:
            # The heartbeat starts first: the lease is renewed while the unit waits for a slot,
            # then only while the watchdog sees the unit make progress.
            async with (
                self.ledger.heartbeat(claim.lease, self.renew_every, watchdog.alive) as holder,
                self.slots,
            ):
                job_id = claim.lease.record.job_id
                journal = LedgerJournal(self.ledger, holder)
                with self.board.watching(unit, watchdog.progress):
                    result = await self._watched(
                        watchdog, key, pipeline, info, meta, job_id=job_id, journal=journal
                    )
        except StageError as exc:
            return await self._stage_failed(holder.lease, key, pipeline, exc)
        except LeaseLostError as exc:
            return UnitOutcome(unit, Status.TRANSIENT, error=str(exc))
        except PermanentError as exc:
            # Only the object's metadata is read before the stages: a fault there is extract's.
            failed = await self.ledger.fail(holder.lease, f"extract: {exc}")
            await self._announce(key, pipeline, failed)
            public = f"extract: {MISSING if isinstance(exc, NotFoundError) else 'failed'}"
            return UnitOutcome(unit, Status.FAILED, error=str(exc), public_reason=public)
        except TransientError:
            await self.ledger.release(holder.lease)
            raise
        except asyncio.CancelledError:
            await self._release(holder.lease)
            raise
        except Exception as exc:  # a bug, not a verdict on the file: never keep the lease
            log.exception("unit %s: unexpected %s", key, type(exc).__name__)
            await self._release(holder.lease)
            return UnitOutcome(unit, Status.TRANSIENT, error=f"unexpected {type(exc).__name__}")
        record = await self.ledger.complete(holder.lease, result)
        await self._announce(key, pipeline, record)
        return UnitOutcome(
            unit,
            Status.LOADED,
            result.rows_loaded,
            result.rows_quarantined,
            stage_seconds=tuple(result.durations.items()),
        )

    async def _watched(
        self,
        watchdog: Watchdog,
        key: UnitKey,
        pipeline: Pipeline,
        info: ObjectInfo,
        meta: EventMeta,
        *,
        job_id: str | None,
        journal: LedgerJournal,
    ) -> UnitResult:
        """Run the unit under the watchdog: a stall ends it as a transient failure of its stage.
        The load is submitted under ``job_id``, the one the unit's ledger record holds."""
        progress = watchdog.progress

        async def run() -> UnitResult:
            with progress.working("extract"):
                current = await filled_in(self.store, info)
            ctx = self.runner.context(key, pipeline, current, meta, progress, journal=journal)
            return await self.runner.run(replace(ctx, recorded_job_id=job_id))

        return await watchdog.guard(str(key), run())

    async def _stage_failed(
        self, lease: Any, key: UnitKey, pipeline: Pipeline, exc: StageError
    ) -> UnitOutcome:
        unit = str(key)
        if exc.transient:
            await self.ledger.release(lease)
            return UnitOutcome(unit, Status.TRANSIENT, error=str(exc.cause), stage=exc.stage)
        rejected = exc.cause if isinstance(exc.cause, RowsRejected) else None
        result = rejected.result if rejected else None
        record = await self.ledger.fail(lease, f"{exc.stage}: {exc.cause}", result)
        await self._announce(key, pipeline, record)
        return UnitOutcome(
            unit,
            Status.FAILED,
            rows_quarantined=result.rows_quarantined if result else 0,
            error=str(exc.cause),
            stage=exc.stage,
            rows_rejected=result.rows_rejected if result else 0,
            public_reason=rejected.public if rejected else None,
        )

    async def _announce(self, key: UnitKey, pipeline: Pipeline, record: LedgerRecord) -> None:
        """Tell downstream the unit ended. Only the worker whose write ended it gets here, so a
        duplicate delivery (answered from the ledger) announces nothing; a forced re-run does.
        """
        ended = unit_ended(key, record, pipeline.table.name)
        try:
            await self.outcomes.publish(ended)
        except Exception as exc:  # the end is recorded: a lost announcement must not undo it
            log.error(
                "unit %s: outcome %s not published: %s; message was %s",
                key,
                ended.state.value,
                exc,
                ended.encode().decode(),
                extra={"state": ended.state.value},
            )

    async def _release(self, lease: Any) -> None:
        """Give a cancelled unit's lease up so its redelivery need not wait for it to expire."""
        try:
            await self.ledger.release(lease)
        except IngestError as exc:
            log.warning("could not release the lease of unit %s: %s", lease.unit, exc)


def log_outcome(outcome: UnitOutcome) -> None:
    """The one line each unit gets: what happened, rows, and why when it did not load."""
    detail = f"{outcome.rows_loaded} rows loaded, {outcome.rows_quarantined} quarantined"
    if outcome.status is Status.DUPLICATE:
        detail = f"{outcome.rows_loaded} rows loaded by an earlier run"
    if outcome.error:
        where = f" in stage {outcome.stage}" if outcome.stage else ""
        detail = f"{detail}{where}: {outcome.error}"
    elif outcome.reason:
        detail = f"{detail}: {outcome.reason}"
    log.log(
        UNIT_LOG_LEVEL[outcome.status],
        "unit %s: %s (%s)",
        outcome.unit,
        outcome.status.value,
        detail,
        extra={"outcome": outcome.status.value},
    )
