"""The ledger's store failing under it: every answer is a TransientError, never a wrong "done".

Each store is broken the way it breaks for real: the in-memory one by its switch, SQLite by
another process holding the write lock past the busy timeout, Firestore by stopping a
dedicated emulator in the middle of the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.adapters.gcp.firestore import FirestoreLedgerStore
from service.adapters.local.sqlite_ledger import SqliteLedgerStore
from service.adapters.memory import MemoryLedgerStore
from service.errors import LeaseLostError, TransientError
from service.ledger import Claimed, Ledger
from service.models import LedgerRecord, UnitKey, UnitResult, UnitState
from service.ports import IdempotencyStore
from service.settings import Settings
from tests.emulators import ensure_installed, start_firestore, stop

DONE = UnitKey("orders", "landing", "orders/done.csv", 1)
HELD = UnitKey("orders", "landing", "orders/held.csv", 1)
NEW = UnitKey("orders", "landing", "orders/new.csv", 1)
RESULT = UnitResult(rows_read=2, rows_loaded=2, job_id="j1")


@dataclass
class Outage:
    store: IdempotencyStore
    cut: Callable[[], None]
    restore: Callable[[], None] | None  # None: this outage is for good (a stopped emulator)


def record_for(unit: UnitKey) -> LedgerRecord:
    """A throwaway record under a key no test reads (the warm-up write)."""
    now = datetime.now(UTC)
    return LedgerRecord(
        key=f"warm-up-{unit.digest}",
        unit=str(unit),
        pipeline=unit.pipeline,
        state=UnitState.COMPLETED,
        owner="warm-up",
        lease_expires_at=now,
        fingerprint="md5:-",
        attempt=1,
        created_at=now,
        updated_at=now,
        expire_at=now,
    )


@contextlib.asynccontextmanager
async def broken(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Outage]:
    if kind == "memory":
        memory = MemoryLedgerStore()

        def switch(down: bool) -> None:
            memory.unavailable = down

        yield Outage(memory, lambda: switch(True), lambda: switch(False))
    elif kind == "sqlite":
        path = tmp_path / "ledger.sqlite3"
        sqlite = SqliteLedgerStore(path, busy_timeout=0.2)
        locker = sqlite3.connect(path, isolation_level=None)

        def lock() -> None:
            locker.execute("BEGIN EXCLUSIVE")  # another process in the middle of a write

        def unlock() -> None:
            locker.execute("ROLLBACK")

        try:
            yield Outage(sqlite, lock, unlock)
        finally:
            locker.close()
            await sqlite.close()
    else:
        ensure_installed()
        emulator = start_firestore(tmp_path)
        try:
            monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", emulator.endpoint)
            settings = Settings(
                backend="gcp",
                project="test",
                firestore_emulator_host=emulator.endpoint,
                ledger_collection="outage",
            )
            warm_up = FirestoreLedgerStore.from_settings(settings)  # a cold JVM answers slowly
            await warm_up.create(record_for(NEW))
            await warm_up.close()
            firestore = FirestoreLedgerStore.from_settings(settings, timeout=1.0)
            yield Outage(firestore, lambda: stop(emulator), None)
            await firestore.close()
        finally:
            stop(emulator)


@pytest.fixture(params=["memory", "sqlite", pytest.param("firestore", marks=pytest.mark.emulators)])
async def outage(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Outage]:
    async with broken(request.param, tmp_path, monkeypatch) as made:
        yield made


@pytest.fixture(params=["memory", "sqlite"])
async def passing_outage(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Outage]:
    """An outage that ends (a stopped emulator cannot come back on its port)."""
    async with broken(request.param, tmp_path, monkeypatch) as made:
        yield made


async def test_store_failures_are_transient_never_a_wrong_answer(outage: Outage) -> None:
    ledger = Ledger(outage.store, owner="w1", lease_seconds=60)
    done = await ledger.claim(DONE, "md5:AAA")
    assert isinstance(done, Claimed)
    await ledger.complete(done.lease, RESULT)
    held = await ledger.claim(HELD, "md5:BBB")
    assert isinstance(held, Claimed)

    outage.cut()
    other = Ledger(outage.store, owner="w2", lease_seconds=60)
    with pytest.raises(TransientError) as duplicate:
        await other.claim(DONE, "md5:AAA")  # not "done": the ledger cannot tell right now
    assert not isinstance(duplicate.value, LeaseLostError)
    with pytest.raises(TransientError):
        await other.claim(NEW, "md5:CCC")
    with pytest.raises(TransientError) as completion:
        await ledger.complete(held.lease, RESULT)
    assert not isinstance(completion.value, LeaseLostError)  # unknown, not lost
    with pytest.raises(TransientError):
        await ledger.renew(held.lease)

    if outage.restore is None:
        return
    outage.restore()
    stored = await outage.store.get(HELD.digest)
    assert stored is not None
    assert stored.record.state is UnitState.IN_PROGRESS  # nothing half-written
    assert stored.version == held.lease.version
    await ledger.complete(held.lease, RESULT)  # the lease survived the outage
    assert await outage.store.get(NEW.digest) is None


async def test_heartbeat_survives_failed_renewals(
    passing_outage: Outage, caplog: pytest.LogCaptureFixture
) -> None:
    outage = passing_outage
    assert outage.restore is not None
    ledger = Ledger(outage.store, owner="w1", lease_seconds=60)
    claim = await ledger.claim(HELD, "md5:BBB")
    assert isinstance(claim, Claimed)
    async with ledger.heartbeat(claim.lease, every_seconds=0.01) as holder:
        outage.cut()
        await asyncio.sleep(0.5)  # several renewals fail meanwhile (SQLite: 0.2 s each)
        outage.restore()
        for _ in range(500):  # bounded: renewals succeed again
            if holder.lease.version != claim.lease.version:
                break
            await asyncio.sleep(0.01)
    assert holder.lost is None
    assert any("lease renewal failed" in r.getMessage() for r in caplog.records)
    assert holder.lease.version != claim.lease.version
    await ledger.complete(holder.lease, RESULT)
