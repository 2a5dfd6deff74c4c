"""In-memory adapters for unit tests: same contracts as the real ones, no I/O."""

from __future__ import annotations

import asyncio
import itertools

from service.errors import TransientError
from service.models import LedgerRecord, Stored, UnitState
from service.ports import EVERY_RECORD, LedgerQuery, SweepCursor


class MemoryLedgerStore:
    def __init__(self) -> None:
        self._records: dict[str, Stored] = {}
        self._versions = itertools.count(1)
        self._lock = asyncio.Lock()
        self.unavailable = False  # tests flip this to simulate an outage

    def _check(self) -> None:
        if self.unavailable:
            raise TransientError("memory ledger store is unavailable")

    async def get(self, key: str) -> Stored | None:
        self._check()
        return self._records.get(key)

    async def create(self, record: LedgerRecord) -> str | None:
        self._check()
        async with self._lock:
            if record.key in self._records:
                return None
            version = str(next(self._versions))
            self._records[record.key] = Stored(record, version)
            return version

    async def replace(self, record: LedgerRecord, expected_version: str) -> str | None:
        self._check()
        async with self._lock:
            current = self._records.get(record.key)
            if current is None or current.version != expected_version:
                return None
            version = str(next(self._versions))
            self._records[record.key] = Stored(record, version)
            return version

    async def list(self, query: LedgerQuery = EVERY_RECORD, limit: int = 100) -> list[Stored]:
        self._check()
        rows = [s for s in self._records.values() if query.matches(s.record)]
        rows.sort(key=lambda s: s.record.updated_at, reverse=True)
        return rows[:limit]

    async def count(self, query: LedgerQuery, *, up_to: int) -> int:
        self._check()
        found = sum(1 for s in self._records.values() if query.matches(s.record))
        return min(found, up_to)

    async def last_completed(self, name_key: str) -> LedgerRecord | None:
        self._check()
        done = [
            s.record
            for s in self._records.values()
            if s.record.name_key == name_key and s.record.state is UnitState.COMPLETED
        ]
        return max(done, key=lambda r: r.generation or 0, default=None)

    async def ping(self) -> None:
        self._check()

    async def close(self) -> None:
        return None


class MemorySweepCursors:
    def __init__(self) -> None:
        self.cursors: dict[str, SweepCursor] = {}

    async def get(self, key: str) -> SweepCursor | None:
        return self.cursors.get(key)

    async def put(self, cursor: SweepCursor) -> None:
        self.cursors[cursor.key] = cursor

    async def close(self) -> None:
        return None
