"""Shared test support: a settable clock, and a ledger store whose process dies mid-unit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.models import LedgerRecord, Stored, UnitState
from service.ports import EVERY_RECORD, IdempotencyStore, LedgerQuery


class FakeClock:
    """A clock the test moves by hand (``clock.now += timedelta(...)``)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Killed(BaseException):
    """The process dies: nothing catches it, nothing is released."""


class DiesBeforeCompletion:
    """A ledger store whose process dies right before it records a unit as COMPLETED."""

    def __init__(self, inner: IdempotencyStore) -> None:
        self.inner = inner

    async def get(self, key: str) -> Stored | None:
        return await self.inner.get(key)

    async def create(self, record: LedgerRecord) -> str | None:
        return await self.inner.create(record)

    async def replace(self, record: LedgerRecord, expected_version: str) -> str | None:
        if record.state is UnitState.COMPLETED:
            raise Killed("killed between the load and the ledger's completion")
        return await self.inner.replace(record, expected_version)

    async def list(self, query: LedgerQuery = EVERY_RECORD, limit: int = 100) -> list[Stored]:
        return await self.inner.list(query, limit)

    async def count(self, query: LedgerQuery, *, up_to: int) -> int:
        return await self.inner.count(query, up_to=up_to)

    async def last_completed(self, name_key: str) -> LedgerRecord | None:
        return await self.inner.last_completed(name_key)

    async def ping(self) -> None:
        await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()
