"""The stream path's notes in the unit's ledger record, written under the unit's lease."""

from __future__ import annotations

from service.ledger import LeaseHolder, Ledger
from service.models import UnitResult
from service.pipeline.stream_load import COMMITTING, WRITING


class LedgerJournal:
    """``StreamJournal`` over the ledger: each note is a compare-and-set on the held lease."""

    def __init__(self, ledger: Ledger, holder: LeaseHolder) -> None:
        self.ledger = ledger
        self.holder = holder

    @property
    def phase(self) -> str | None:
        return self.holder.lease.record.write_phase

    @property
    def streams(self) -> tuple[str, ...]:
        return self.holder.lease.record.write_streams

    @property
    def pending(self) -> UnitResult | None:
        return self.holder.lease.record.result if self.phase == COMMITTING else None

    async def writing(self, streams: tuple[str, ...]) -> None:
        await self.ledger.note_streams(self.holder, WRITING, streams)

    async def committing(self, streams: tuple[str, ...], result: UnitResult) -> None:
        await self.ledger.note_streams(self.holder, COMMITTING, streams, result)

    async def restart(self) -> None:
        await self.ledger.note_streams(self.holder, None, ())
