"""stream load: validated batches go to a pending Write API stream, committed exactly once.

The unit's ledger record carries the protocol (``StreamJournal``): the stream is recorded as
"writing" under the lease before the first append; after the last append the stream is
finalized and its row count checked; the record moves to "committing" (a compare-and-set: a
worker whose lease was taken over fails here and never commits); then the batch commit. When
the commit's answer is lost or refused, the stream is read back: a commit that happened is
adopted. A takeover of a "committing" unit only finishes that commit (``resume``); a takeover
of a "writing" unit starts a new stream, and the old one, never committed, expires.

Appends carry explicit offsets, one at a time: a request whose answer was lost is resent at
the same offset, and "already there" counts as done. The stage awaits each answer before the
rows' bytes go back to the budget, so what is in flight stays inside the byte budget.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pyarrow as pa

from service.errors import ConnectionLost, PermanentError, TransientError
from service.models import StreamPhase, TableSpec, UnitResult
from service.ports import StreamJournal, StreamWriter

log = logging.getLogger(__name__)

# Bytes of Arrow data per AppendRows request: the API refuses requests of 10 MB or more, and
# the request's envelope (stream name, offset, the schema in the first one) needs room too.
MAX_REQUEST_BYTES = 8 * 1024 * 1024
# Resends of one append over fresh connections before the unit is retried as a whole.
MAX_RESENDS = 5
WRITING = "writing"
COMMITTING = "committing"


def plain(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Dictionary columns decoded: the Write API takes plain Arrow types only."""
    if not any(pa.types.is_dictionary(f.type) for f in batch.schema):
        return batch
    columns = [
        c.dictionary_decode() if pa.types.is_dictionary(c.type) else c for c in batch.columns
    ]
    fields = [
        pa.field(f.name, f.type.value_type, f.nullable) if pa.types.is_dictionary(f.type) else f
        for f in batch.schema
    ]
    return pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields))


def pieces(batch: pa.RecordBatch, limit: int = MAX_REQUEST_BYTES) -> list[pa.RecordBatch]:
    """The batch cut into row ranges of at most ``limit`` bytes each (one request each)."""
    if batch.num_rows == 0:
        return []
    parts = -(-batch.nbytes // limit)
    if parts <= 1:
        return [batch]
    step = -(-batch.num_rows // parts)
    cut = [batch.slice(i, step) for i in range(0, batch.num_rows, step)]
    if step == 1 and any(p.nbytes >= limit for p in cut):
        raise PermanentError(f"a row is larger than one request may be ({limit} bytes)")
    return [p for c in cut for p in pieces(c, limit)] if step > 1 else cut


@dataclass
class StreamSink:
    """One unit's pending stream; ``write`` returns once the API has the rows."""

    writer: StreamWriter
    stream: str
    request_bytes: int = MAX_REQUEST_BYTES
    offset: int = 0
    handed_over: bool = False  # the ledger says "committing": the commit's fate is its own

    @classmethod
    async def open(
        cls, writer: StreamWriter, journal: StreamJournal, table: TableSpec
    ) -> StreamSink:
        stream = await writer.create_stream(table)
        await journal.writing((stream,))
        return cls(writer, stream, MAX_REQUEST_BYTES)

    async def write(self, batch: pa.RecordBatch) -> None:
        for piece in pieces(plain(batch), self.request_bytes):
            await self._append(piece)
            self.offset += piece.num_rows

    async def _append(self, piece: pa.RecordBatch) -> None:
        for attempt in range(MAX_RESENDS + 1):
            try:
                if not await self.writer.append(self.stream, piece, self.offset):
                    log.info("stream %s: offset %d was applied already", self.stream, self.offset)
                return
            except ConnectionLost as exc:
                log.warning(
                    "stream %s: connection lost at offset %d (resend %d): %s",
                    self.stream,
                    self.offset,
                    attempt + 1,
                    exc,
                )
        raise TransientError(f"stream {self.stream}: {MAX_RESENDS} resends at {self.offset} failed")

    async def commit(
        self, table: TableSpec, journal: StreamJournal, result: UnitResult
    ) -> UnitResult:
        """Finalize, check the count, move the ledger to "committing", then commit once."""
        rows = await self.writer.finalize(self.stream)
        if rows != self.offset:
            raise TransientError(
                f"stream {self.stream} holds {rows} rows after finalize, {self.offset} were sent"
            )
        await journal.committing((self.stream,), result)
        self.handed_over = True
        return await finish_commit(self.writer, journal, table, (self.stream,), result)

    async def abandon(self) -> None:
        """Never to be committed: the warehouse drops it (BigQuery lets it expire). Once
        handed over to a commit it is kept: a retry or a takeover finishes that commit."""
        if not self.handed_over:
            await self.writer.abandon(self.stream)


async def resume(writer: StreamWriter, journal: StreamJournal, table: TableSpec) -> UnitResult:
    """A takeover of a unit in "committing": finish that commit (or adopt it), nothing else."""
    result = journal.pending or UnitResult(table=table.name)
    return await finish_commit(writer, journal, table, journal.streams, result)


async def finish_commit(
    writer: StreamWriter,
    journal: StreamJournal,
    table: TableSpec,
    streams: tuple[str, ...],
    result: UnitResult,
) -> UnitResult:
    try:
        if await writer.commit(table, streams):
            return result
    except TransientError as exc:
        log.warning("commit of %s: %s; reading the streams back", ", ".join(streams), exc)
    states = [await writer.describe(name) for name in streams]
    phases = {state.phase for state in states}
    if phases == {StreamPhase.COMMITTED}:
        log.info("commit of %s had happened already: adopted", ", ".join(streams))
        return result
    if StreamPhase.UNKNOWN in phases:
        # Expired, or committed long enough ago to be forgotten: loading again could double.
        raise PermanentError(
            f"streams {', '.join(streams)} are gone and their commit was never confirmed"
            " (pending streams expire after 24 hours): check the table, then re-run with --force"
        )
    if StreamPhase.GONE in phases:
        await journal.restart()
        raise TransientError(f"streams {', '.join(streams)} expired uncommitted: writing anew")
    raise TransientError(f"commit of {', '.join(streams)} not confirmed: it will be retried")
