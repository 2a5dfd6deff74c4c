"""Idempotency rules over the IdempotencyStore port: exactly-once effect, at-least-once delivery.

States: IN_PROGRESS (with an owner and a lease) -> COMPLETED | FAILED. A claim is a put-if-absent;
an expired lease is taken over with compare-and-set on the store's version token, so a stale owner
that finishes late cannot overwrite the new owner's record. Every write after the claim is a
compare-and-set on the version the lease holds: a lease that lost its record raises
LeaseLostError instead of writing. The stores only get, create, replace and list.

Longer than 300 lines: the claim, takeover, heartbeat and ending rules share the lease and the
store's version token; they are the one place exactly-once is decided, kept together on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from service.errors import LeaseLostError, TransientError
from service.models import LedgerRecord, Stored, UnitKey, UnitResult, UnitState
from service.ports import IdempotencyStore

log = logging.getLogger(__name__)

# How long records are kept before Firestore's TTL policy (on ``expire_at``) may delete them.
RETENTION = timedelta(days=30)
# Compare-and-set races lost in a row before a claim stops trying and answers from what it sees.
MAX_CAS_ROUNDS = 5

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Lease:
    """Proof of ownership of one unit; each renewal yields a new one."""

    key: str
    unit: str
    owner: str
    version: str
    record: LedgerRecord


@dataclass(frozen=True)
class Claimed:
    lease: Lease
    takeover: bool = False  # an expired lease, or a forced re-run of a finished unit


@dataclass(frozen=True)
class Refused:
    """A claim not granted, with the record that decided it (one of the kinds below)."""

    record: LedgerRecord


class AlreadyDone(Refused):
    """The unit is COMPLETED."""


class AlreadyFailed(Refused):
    """The unit is FAILED (retried only by force)."""


class Busy(Refused):
    """Another worker holds a live lease on the unit."""


@dataclass(frozen=True)
class FingerprintMismatch(Refused):
    """The unit was claimed for other content (``record.fingerprint``) than ``fingerprint``."""

    fingerprint: str


ClaimOutcome = Claimed | AlreadyDone | AlreadyFailed | Busy | FingerprintMismatch


class Ledger:
    def __init__(
        self,
        store: IdempotencyStore,
        *,
        owner: str,
        lease_seconds: float,
        clock: Clock = utcnow,
        retention: timedelta = RETENTION,
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.store = store
        self.owner = owner
        self.lease = timedelta(seconds=lease_seconds)
        self.clock = clock
        self.retention = retention

    async def claim(
        self,
        unit: UnitKey,
        fingerprint: str,
        *,
        event_id: str | None = None,
        force: bool = False,
        object_agrees: bool = False,
        job_id: str | None = None,
        crc32c: str | None = None,
    ) -> ClaimOutcome:
        """Take the unit, or say why not. Store failures raise TransientError (retry later).

        ``crc32c``: the generation's CRC32C, kept beside the fingerprint for later generations
        of the name to compare with (``last_completed``).
        ``job_id``: the load job id this attempt would submit; the record keeps it, and taking
        over an expired lease keeps the job id recorded there instead (see ``_take_over``).
        ``object_agrees``: the stored object's own checksum equals ``fingerprint``, so a record
        of the same unit with another fingerprint came from a false event; unless it completed,
        this claim takes it over instead of being refused as other content.
        """
        fresh = replace(self._new_record(unit, fingerprint, event_id), job_id=job_id, crc32c=crc32c)
        stored: Stored | None = None
        for _ in range(MAX_CAS_ROUNDS):
            version = await self.store.create(fresh)
            if version is not None:
                return Claimed(Lease(fresh.key, fresh.unit, self.owner, version, fresh))
            stored = await self.store.get(fresh.key)
            if stored is None:
                continue  # deleted (TTL) between our create and get: create again
            verdict = self._verdict(stored.record, fresh, force=force, agrees=object_agrees)
            if verdict is not None:
                return verdict
            claimed = await self._take_over(stored, fresh)
            if claimed is not None:
                return claimed
        # Every round lost a race: someone else is moving this unit right now.
        if stored is None:
            raise TransientError(f"ledger could not settle a claim for {unit}")
        verdict = self._verdict(stored.record, fresh, force=force, agrees=object_agrees)
        return verdict or Busy(stored.record)

    def _verdict(
        self, current: LedgerRecord, fresh: LedgerRecord, *, force: bool, agrees: bool = False
    ) -> ClaimOutcome | None:
        """The answer for an existing record, or None when the caller may take it over."""
        if _conflicting(current.fingerprint, fresh.fingerprint) and not force:
            if agrees and current.state is not UnitState.COMPLETED:
                return self._judged(current, fresh)
            log.warning(
                "unit %s refused: its content changed (stored %s from event %s, arriving %s"
                " from event %s)",
                current.unit,
                current.fingerprint,
                current.event_id,
                fresh.fingerprint,
                fresh.event_id,
                extra={"unit": current.unit, "event_id": fresh.event_id},
            )
            return FingerprintMismatch(current, fresh.fingerprint)
        if current.state is UnitState.IN_PROGRESS and current.lease_expires_at > self.clock():
            return Busy(current)  # a live lease is never taken, not even by force
        if current.state is UnitState.COMPLETED and not force:
            return AlreadyDone(current)
        if current.state is UnitState.FAILED and not force:
            return AlreadyFailed(current)
        return None

    def _judged(self, current: LedgerRecord, fresh: LedgerRecord) -> ClaimOutcome | None:
        """The object sided with the arriving event: its record yields unless a lease is live."""
        if current.state is UnitState.IN_PROGRESS and current.lease_expires_at > self.clock():
            return Busy(current)
        log.warning(
            "unit %s: the object's checksum is %s, not %s (event %s): taken over",
            current.unit,
            fresh.fingerprint,
            current.fingerprint,
            current.event_id,
            extra={"unit": current.unit, "event_id": fresh.event_id},
        )
        return None

    async def _take_over(self, stored: Stored, fresh: LedgerRecord) -> Claimed | None:
        """Compare-and-set on the version we read: None when another writer moved first."""
        current = stored.record
        takeover = replace(fresh, attempt=current.attempt + 1, created_at=current.created_at)
        if current.state is UnitState.IN_PROGRESS and current.job_id is not None:
            # The dead attempt may have submitted its load: submitting under its id adopts
            # that job, whatever the settings say now. A forced re-run of a finished unit is
            # meant to run anew, so it takes the fresh id.
            takeover = replace(takeover, job_id=current.job_id)
        if _committing(current, fresh):
            # Those streams may be committed already: the new owner only finishes that commit.
            takeover = replace(
                takeover,
                write_phase=current.write_phase,
                write_streams=current.write_streams,
                result=current.result,
            )
        version = await self.store.replace(takeover, stored.version)
        if version is None:
            return None
        if current.state is UnitState.IN_PROGRESS:
            log.warning(
                "unit %s: expired lease of %s taken over (attempt %d)",
                current.unit,
                current.owner,
                takeover.attempt,
                extra={"unit": current.unit, "event_id": fresh.event_id},
            )
        else:
            log.info(
                "unit %s: forced re-run of a %s unit",
                current.unit,
                current.state.value,
                extra={"unit": current.unit, "event_id": fresh.event_id},
            )
        return Claimed(Lease(takeover.key, takeover.unit, self.owner, version, takeover), True)

    async def last_completed(self, unit: UnitKey) -> LedgerRecord | None:
        """The record of the unit's name's last COMPLETED generation, if the ledger has one."""
        return await self.store.last_completed(unit.name_digest)

    async def renew(self, lease: Lease) -> Lease:
        now = self.clock()
        record = replace(lease.record, lease_expires_at=now + self.lease, updated_at=now)
        return await self._write(lease, record)

    async def complete(self, lease: Lease, result: UnitResult) -> LedgerRecord:
        return await self._finish(lease, UnitState.COMPLETED, result, None)

    async def fail(
        self, lease: Lease, reason: str, result: UnitResult | None = None
    ) -> LedgerRecord:
        return await self._finish(lease, UnitState.FAILED, result, reason)

    async def release(self, lease: Lease) -> None:
        """Give the unit up now (a transient failure, shutdown): a redelivery takes it at once."""
        now = self.clock()
        record = replace(lease.record, lease_expires_at=now, updated_at=now)
        with contextlib.suppress(LeaseLostError):
            await self._write(lease, record)

    async def note_streams(
        self,
        holder: LeaseHolder,
        phase: str | None,
        streams: tuple[str, ...],
        result: UnitResult | None = None,
    ) -> None:
        """Record the Write API path's phase and streams under the lease (compare-and-set):
        a worker whose lease was taken over gets LeaseLostError and never commits."""
        async with holder.writing:
            record = replace(
                holder.lease.record,
                write_phase=phase,
                write_streams=streams,
                result=result,
                updated_at=self.clock(),
            )
            holder.lease = await self._write(holder.lease, record)

    async def _finish(
        self, lease: Lease, state: UnitState, result: UnitResult | None, error: str | None
    ) -> LedgerRecord:
        now = self.clock()
        record = replace(
            lease.record,
            state=state,
            result=result,
            error=error,
            lease_expires_at=now,
            updated_at=now,
            expire_at=now + self.retention,
        )
        await self._write(lease, record)
        return record

    async def _write(self, lease: Lease, record: LedgerRecord) -> Lease:
        version = await self.store.replace(record, lease.version)
        if version is None:
            raise LeaseLostError(f"unit {lease.unit}: lease lost to another worker")
        return Lease(lease.key, lease.unit, lease.owner, version, record)

    @contextlib.asynccontextmanager
    async def heartbeat(
        self, lease: Lease, every_seconds: float, alive: Callable[[], bool] | None = None
    ) -> AsyncIterator[LeaseHolder]:
        """Keep the lease alive while the body runs (and, given ``alive``, only while it says
        so); the holder always has the latest lease.

        A lease lost meanwhile is raised as LeaseLostError when the body ends normally.
        """
        holder = LeaseHolder(lease)
        task = asyncio.create_task(self._renew_loop(holder, every_seconds, alive))
        try:
            yield holder
        finally:
            # Never cancel a renewal mid-write: its new version would be lost to the holder.
            holder.stopping.set()
            await task
        if holder.lost is not None:
            raise holder.lost

    async def _renew_loop(
        self, holder: LeaseHolder, every_seconds: float, alive: Callable[[], bool] | None
    ) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(holder.stopping.wait(), every_seconds)
                return
            if alive is not None and not alive():
                continue  # a stalled unit's lease runs out; the watchdog cancels the unit
            try:
                async with holder.writing:
                    holder.lease = await self.renew(holder.lease)
            except LeaseLostError as exc:
                log.warning("%s", exc, extra={"unit": holder.lease.unit})
                holder.lost = exc
                return
            except TransientError as exc:
                # A missed renewal is not fatal: the lease still has time left to run.
                log.warning("unit %s: lease renewal failed: %s", holder.lease.unit, exc)

    def _new_record(self, unit: UnitKey, fingerprint: str, event_id: str | None) -> LedgerRecord:
        now = self.clock()
        return LedgerRecord(
            key=unit.digest,
            unit=str(unit),
            pipeline=unit.pipeline,
            state=UnitState.IN_PROGRESS,
            owner=self.owner,
            lease_expires_at=now + self.lease,
            fingerprint=fingerprint,
            attempt=1,
            created_at=now,
            updated_at=now,
            expire_at=now + self.retention,
            event_id=event_id,
            object_uri=f"gs://{unit.bucket}/{unit.name}#{unit.generation}",
            name_key=unit.name_digest,
            generation=unit.generation,
        )


def _committing(current: LedgerRecord, fresh: LedgerRecord) -> bool:
    """An unfinished unit whose Write API streams were handed to a commit."""
    return (
        current.state is UnitState.IN_PROGRESS
        and current.write_phase == "committing"
        and current.fingerprint == fresh.fingerprint
    )


def _conflicting(stored: str, arriving: str) -> bool:
    """Fingerprints of the same kind (md5, crc32c) that differ: same key, other content."""
    stored_kind, _, _ = stored.partition(":")
    arriving_kind, _, _ = arriving.partition(":")
    return stored_kind == arriving_kind and stored != arriving


class LeaseHolder:
    """Mutable cell shared by the heartbeat task and the unit's runner."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self.lost: LeaseLostError | None = None
        self.stopping = asyncio.Event()
        # One compare-and-set at a time: a renewal and a stream note must not race each other.
        self.writing = asyncio.Lock()
