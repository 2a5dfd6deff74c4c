"""An in-memory Storage Write API for unit tests: the same contract as BigQuery's PENDING
streams (explicit offsets, finalize, one atomic commit per stream, expiry), no I/O."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from service.adapters.stream_offsets import finalize, fresh_offset, opened
from service.models import StreamPhase, StreamState, TableSpec


@dataclass
class _Stream:
    table: str
    batches: list[pa.RecordBatch] = field(default_factory=list)
    rows: int = 0
    finalized: bool = False
    committed: bool = False


class MemoryStreamWriter:
    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}
        self._names = itertools.count(1)
        self.tables: dict[str, list[pa.RecordBatch]] = {}
        self.commits = 0  # commits that put rows in a table

    def rows(self, table: str) -> int:
        return sum(b.num_rows for b in self.tables.get(table, []))

    def expire(self, stream: str) -> None:
        """What 24 hours do to an uncommitted pending stream: it is gone."""
        if not self._streams[stream].committed:
            del self._streams[stream]

    async def create_stream(self, table: TableSpec) -> str:
        name = f"{table.name}/streams/{next(self._names)}"
        self._streams[name] = _Stream(table.name)
        return name

    async def append(self, stream: str, batch: pa.RecordBatch, offset: int) -> bool:
        s = opened(self._streams, stream)
        if not fresh_offset(stream, s.finalized, s.rows, offset):
            return False
        s.batches.append(batch)
        s.rows += batch.num_rows
        return True

    async def finalize(self, stream: str) -> int:
        return finalize(self._streams, stream)

    async def commit(self, table: TableSpec, streams: Sequence[str]) -> bool:
        found = [self._streams.get(name) for name in streams]
        ready = [s for s in found if s is not None and s.finalized and not s.committed]
        if len(ready) != len(found):
            return False  # atomic: nothing is committed when any stream cannot be
        for s in ready:
            s.committed = True
            self.tables.setdefault(s.table, []).extend(s.batches)
        self.commits += 1
        return True

    async def describe(self, stream: str) -> StreamState:
        s = self._streams.get(stream)
        if s is None:
            return StreamState(stream, StreamPhase.UNKNOWN)
        if s.committed:
            return StreamState(stream, StreamPhase.COMMITTED, s.rows)
        phase = StreamPhase.FINALIZED if s.finalized else StreamPhase.PENDING
        return StreamState(stream, phase, s.rows)

    async def abandon(self, stream: str) -> None:
        return None  # like BigQuery: an uncommitted stream just expires

    async def close(self) -> None:
        return None
