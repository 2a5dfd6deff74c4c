"""The ledger's rules, one contract suite over every IdempotencyStore.

Each test runs against the in-memory store, SQLite, and Firestore on its emulator (through
Google's real client). Time is a shared fake clock, so lease expiry needs no waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from service.adapters.gcp.firestore import FirestoreLedgerStore
from service.adapters.local.sqlite_ledger import SqliteLedgerStore
from service.adapters.memory import MemoryLedgerStore
from service.codec import json_default, to_doc
from service.errors import LeaseLostError
from service.ledger import (
    RETENTION,
    AlreadyDone,
    AlreadyFailed,
    Busy,
    Claimed,
    ClaimOutcome,
    FingerprintMismatch,
    Ledger,
)
from service.models import LedgerRecord, UnitKey, UnitResult, UnitState
from service.ports import IdempotencyStore, LedgerQuery
from tests.emulator_fixtures import Emulators

LEASE = 60.0
UNIT = UnitKey("orders", "landing", "orders/2026-11-20.csv", 1700000000000001)
RESULT = UnitResult(
    rows_read=5,
    rows_loaded=4,
    rows_quarantined=1,
    job_id="ingest_orders_abc",
    table="sales.orders",
    quarantine_uri="gs://landing/_quarantine/orders/x.jsonl",
    durations={"extract": 0.01, "load": 0.25},
)


class FakeClock:
    """One clock shared by every worker of a test: leases expire when the test says so."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 21, 12, 0, 0, 123456, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("firestore", marks=pytest.mark.emulators),
    ]
)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, unique: str
) -> AsyncIterator[IdempotencyStore]:
    made: IdempotencyStore
    if request.param == "memory":
        made = MemoryLedgerStore()
    elif request.param == "sqlite":
        made = SqliteLedgerStore(tmp_path / "ledger.sqlite3")
    else:
        emulators: Emulators = request.getfixturevalue("emulators")
        made = FirestoreLedgerStore.from_settings(emulators.settings(ledger_collection=unique))
    yield made
    await made.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def worker(store: IdempotencyStore, clock: FakeClock, name: str = "w1") -> Ledger:
    return Ledger(store, owner=name, lease_seconds=LEASE, clock=clock)


def claimed(outcome: ClaimOutcome) -> Claimed:
    assert isinstance(outcome, Claimed), outcome
    return outcome


# --- the store primitives -------------------------------------------------------------------


def record(key: str = "k1", **changes: object) -> LedgerRecord:
    now = datetime(2026, 11, 21, 12, 0, 0, 123456, tzinfo=UTC)
    base = LedgerRecord(
        key=key,
        unit=f"orders:gs://landing/{key}#1",
        pipeline="orders",
        state=UnitState.IN_PROGRESS,
        owner="w1",
        lease_expires_at=now + timedelta(seconds=LEASE),
        fingerprint="md5:AAA",
        attempt=1,
        created_at=now,
        updated_at=now,
        expire_at=now + RETENTION,
        event_id="e1",
        object_uri=f"gs://landing/{key}#1",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


async def test_create_is_put_if_absent(store: IdempotencyStore) -> None:
    first = await store.create(record())
    assert first is not None
    assert await store.create(record(owner="w2")) is None
    stored = await store.get("k1")
    assert stored is not None
    assert (stored.record.owner, stored.version) == ("w1", first)
    assert await store.get("missing") is None


async def test_replace_is_compare_and_set(store: IdempotencyStore) -> None:
    v1 = await store.create(record())
    assert v1 is not None
    v2 = await store.replace(record(owner="w2", attempt=2), v1)
    assert v2 is not None
    assert v2 != v1
    assert await store.replace(record(owner="w3", attempt=3), v1) is None  # stale version
    stored = await store.get("k1")
    assert stored is not None
    assert (stored.record.owner, stored.record.attempt, stored.version) == ("w2", 2, v2)
    assert await store.replace(record("never-created"), v2) is None


async def test_records_round_trip_exactly(store: IdempotencyStore) -> None:
    done = record(state=UnitState.COMPLETED, result=RESULT, error=None)
    failed = record("k2", state=UnitState.FAILED, error="validate: 9 bad rows", event_id=None)
    bare = record("k3", state=UnitState.COMPLETED, result=UnitResult(), object_uri=None)
    running = record("k4", job_id="ingest_orders_0123abcd")
    for rec in (done, failed, bare, running):
        assert await store.create(rec) is not None
        stored = await store.get(rec.key)
        assert stored is not None
        assert stored.record == rec


async def test_list_filters_by_state_and_time_newest_first(store: IdempotencyStore) -> None:
    start = datetime(2026, 11, 21, tzinfo=UTC)
    states = [UnitState.COMPLETED, UnitState.FAILED, UnitState.COMPLETED, UnitState.IN_PROGRESS]
    for i, state in enumerate(states):
        at = start + timedelta(minutes=i)
        assert await store.create(record(f"k{i}", state=state, updated_at=at)) is not None
    everything = await store.list()
    assert [s.record.key for s in everything] == ["k3", "k2", "k1", "k0"]
    completed = await store.list(LedgerQuery(UnitState.COMPLETED))
    assert [s.record.key for s in completed] == ["k2", "k0"]
    recent = await store.list(LedgerQuery(since=start + timedelta(minutes=1)), limit=2)
    assert [s.record.key for s in recent] == ["k3", "k2"]
    both = await store.list(LedgerQuery(UnitState.COMPLETED, since=start + timedelta(seconds=30)))
    assert [s.record.key for s in both] == ["k2"]
    [listed] = await store.list(LedgerQuery(UnitState.IN_PROGRESS))
    fetched = await store.get("k3")
    assert fetched is not None
    assert listed.version == fetched.version  # a listed version is good for compare-and-set


async def mixed_ledger(store: IdempotencyStore) -> None:
    """Six records of two pipelines in all three states, one minute apart (k5 newest)."""
    start = datetime(2026, 11, 21, tzinfo=UTC)
    plan = [
        ("orders", UnitState.COMPLETED),
        ("orders", UnitState.FAILED),
        ("customers", UnitState.COMPLETED),
        ("orders", UnitState.COMPLETED),
        ("customers", UnitState.IN_PROGRESS),
        ("orders", UnitState.COMPLETED),
    ]
    for i, (pipeline, state) in enumerate(plan):
        at = start + timedelta(minutes=i)
        made = record(f"k{i}", pipeline=pipeline, state=state, updated_at=at)
        assert await store.create(made) is not None


async def test_list_filters_by_pipeline(store: IdempotencyStore) -> None:
    await mixed_ledger(store)
    orders = await store.list(LedgerQuery(pipeline="orders"))
    assert [s.record.key for s in orders] == ["k5", "k3", "k1", "k0"]
    done = await store.list(LedgerQuery(UnitState.COMPLETED, "customers"))
    assert [s.record.key for s in done] == ["k2"]
    assert await store.list(LedgerQuery(pipeline="nowhere")) == []


async def test_count_per_state_and_pipeline(store: IdempotencyStore) -> None:
    await mixed_ledger(store)
    counts = {state: await store.count(LedgerQuery(state), up_to=100) for state in UnitState}
    assert counts == {UnitState.COMPLETED: 4, UnitState.FAILED: 1, UnitState.IN_PROGRESS: 1}
    assert await store.count(LedgerQuery(UnitState.COMPLETED, "orders"), up_to=100) == 3
    assert await store.count(LedgerQuery(UnitState.IN_PROGRESS, "orders"), up_to=100) == 0
    assert await store.count(LedgerQuery(UnitState.COMPLETED, "nowhere"), up_to=100) == 0


async def test_count_since_a_time(store: IdempotencyStore) -> None:
    await mixed_ledger(store)  # k0..k5 one minute apart from the start
    start = datetime(2026, 11, 21, tzinfo=UTC)
    since = start + timedelta(minutes=3)  # k3 (updated exactly then), k4, k5
    counts = {
        state: await store.count(LedgerQuery(state, since=since), up_to=100) for state in UnitState
    }
    assert counts == {UnitState.COMPLETED: 2, UnitState.FAILED: 0, UnitState.IN_PROGRESS: 1}
    assert await store.count(LedgerQuery(UnitState.COMPLETED, "orders", since), up_to=100) == 2
    later = start + timedelta(minutes=4, seconds=30)
    assert await store.count(LedgerQuery(UnitState.COMPLETED, "orders", later), up_to=100) == 1
    assert await store.count(LedgerQuery(UnitState.COMPLETED, since=later), up_to=1) == 1
    assert (
        await store.count(
            LedgerQuery(UnitState.COMPLETED, since=start + timedelta(hours=1)), up_to=9
        )
        == 0
    )


async def test_a_count_stops_at_its_cap(store: IdempotencyStore) -> None:
    await mixed_ledger(store)
    assert await store.count(LedgerQuery(UnitState.COMPLETED), up_to=2) == 2
    assert await store.count(LedgerQuery(UnitState.COMPLETED, "orders"), up_to=3) == 3
    assert await store.count(LedgerQuery(UnitState.FAILED), up_to=2) == 1


# --- claim, busy, complete, fail --------------------------------------------------------------


async def test_claim_writes_an_in_progress_lease(store: IdempotencyStore, clock: FakeClock) -> None:
    claim = claimed(await worker(store, clock).claim(UNIT, "md5:AAA", event_id="e1"))
    assert not claim.takeover
    stored = await store.get(UNIT.digest)
    assert stored is not None
    rec = stored.record
    assert (rec.state, rec.owner, rec.attempt, rec.event_id) == (
        UnitState.IN_PROGRESS,
        "w1",
        1,
        "e1",
    )
    assert rec.unit == str(UNIT)
    assert rec.lease_expires_at == clock.now + timedelta(seconds=LEASE)
    assert rec.expire_at == clock.now + RETENTION
    assert stored.version == claim.lease.version


async def test_live_lease_answers_busy(store: IdempotencyStore, clock: FakeClock) -> None:
    claimed(await worker(store, clock, "w1").claim(UNIT, "md5:AAA"))
    clock.advance(LEASE - 1)
    again = await worker(store, clock, "w2").claim(UNIT, "md5:AAA", event_id="e2")
    assert isinstance(again, Busy)
    assert again.record.owner == "w1"
    forced = await worker(store, clock, "w2").claim(UNIT, "md5:AAA", force=True)
    assert isinstance(forced, Busy)  # force never steals a live lease


async def test_completed_unit_answers_done_with_its_result(
    store: IdempotencyStore, clock: FakeClock
) -> None:
    ledger = worker(store, clock)
    claim = claimed(await ledger.claim(UNIT, "md5:AAA"))
    clock.advance(5)
    done = await ledger.complete(claim.lease, RESULT)
    assert done.state is UnitState.COMPLETED
    assert done.expire_at == clock.now + RETENTION
    clock.advance(LEASE * 10)
    again = await worker(store, clock, "w2").claim(UNIT, "md5:AAA")
    assert isinstance(again, AlreadyDone)
    assert again.record.result == RESULT
    assert again.record.owner == "w1"


async def test_failed_unit_answers_failed_with_its_reason(
    store: IdempotencyStore, clock: FakeClock
) -> None:
    ledger = worker(store, clock)
    claim = claimed(await ledger.claim(UNIT, "md5:AAA"))
    await ledger.fail(claim.lease, "validate: 9 bad rows of 10")
    clock.advance(LEASE * 10)
    again = await worker(store, clock, "w2").claim(UNIT, "md5:AAA")
    assert isinstance(again, AlreadyFailed)
    assert again.record.error == "validate: 9 bad rows of 10"
    assert again.record.state is UnitState.FAILED


async def test_fifty_concurrent_claims_have_one_winner(
    store: IdempotencyStore, clock: FakeClock
) -> None:
    """Fifty deliveries of one unit at once: one runs it, every other is told busy or done."""

    async def deliver(i: int) -> ClaimOutcome:
        ledger = worker(store, clock, f"w{i}")
        outcome = await ledger.claim(UNIT, "md5:AAA", event_id=f"e{i}")
        if isinstance(outcome, Claimed):
            await ledger.complete(outcome.lease, RESULT)
        return outcome

    outcomes = await asyncio.gather(*(deliver(i) for i in range(50)))
    winners = [o for o in outcomes if isinstance(o, Claimed)]
    assert len(winners) == 1
    others = [o for o in outcomes if not isinstance(o, Claimed)]
    assert all(isinstance(o, Busy | AlreadyDone) for o in others), others
    stored = await store.get(UNIT.digest)
    assert stored is not None
    assert stored.record.state is UnitState.COMPLETED
    assert stored.record.owner == winners[0].lease.owner


async def test_fifty_concurrent_takeovers_have_one_winner(
    store: IdempotencyStore, clock: FakeClock
) -> None:
    claimed(await worker(store, clock, "crashed").claim(UNIT, "md5:AAA"))
    clock.advance(LEASE + 1)
    outcomes = await asyncio.gather(
        *(worker(store, clock, f"w{i}").claim(UNIT, "md5:AAA") for i in range(50))
    )
    winners = [o for o in outcomes if isinstance(o, Claimed)]
    assert len(winners) == 1
    assert winners[0].takeover
    assert all(isinstance(o, Busy) for o in outcomes if o is not winners[0])
    stored = await store.get(UNIT.digest)
    assert stored is not None
    assert (stored.record.owner, stored.record.attempt) == (winners[0].lease.owner, 2)


# --- leases: renewal, expiry, takeover, the stale owner -----------------------------------------


async def test_crash_recovery_refuses_the_stale_owners_late_completion(
    store: IdempotencyStore, clock: FakeClock
) -> None:
    first, second = worker(store, clock, "w1"), worker(store, clock, "w2")
    lease = claimed(await first.claim(UNIT, "md5:AAA", event_id="e1")).lease
    clock.advance(LEASE / 3)
    lease = await first.renew(lease)  # it renews once, then hangs and stops renewing
    clock.advance(LEASE - 1)
    assert isinstance(await second.claim(UNIT, "md5:AAA"), Busy)  # the renewal counted
    clock.advance(2)
    takeover = claimed(await second.claim(UNIT, "md5:AAA", event_id="e2"))
    assert takeover.takeover
    assert takeover.lease.record.attempt == 2
    await second.complete(takeover.lease, RESULT)
    late = replace(RESULT, rows_loaded=999)
    with pytest.raises(LeaseLostError):
        await first.complete(lease, late)
    with pytest.raises(LeaseLostError):
        await first.fail(lease, "too late")
    with pytest.raises(LeaseLostError):
        await first.renew(lease)
    await first.release(lease)  # a stale release is a quiet no-op
    stored = await store.get(UNIT.digest)
    assert stored is not None
    rec = stored.record
    assert (rec.state, rec.owner, rec.event_id, rec.result) == (
        UnitState.COMPLETED,
        "w2",
        "e2",
        RESULT,
    )
    assert isinstance(await first.claim(UNIT, "md5:AAA"), AlreadyDone)


async def test_takeover_of_a_renewed_lease_is_refused(
    store: IdempotencyStore, clock: FakeClock
) -> None:
    """A taker that read the record before a renewal loses the compare-and-set."""
    first = worker(store, clock, "w1")
    lease = claimed(await first.claim(UNIT, "md5:AAA")).lease
    clock.advance(LEASE + 1)
    seen = await store.get(UNIT.digest)
    assert seen is not None
    renewed = await first.renew(lease)  # the owner was only slow: it renews first
    taken = replace(seen.record, owner="w2", attempt=2)
    assert await store.replace(taken, seen.version) is None
    await first.complete(renewed, RESULT)
    stored = await store.get(UNIT.digest)
    assert stored is not None
    assert (stored.record.state, stored.record.owner) == (UnitState.COMPLETED, "w1")


async def test_expired_but_untaken_lease_may_still_complete(
    store: IdempotencyStore, clock: FakeClock
) -> None:
    ledger = worker(store, clock)
    lease = claimed(await ledger.claim(UNIT, "md5:AAA")).lease
    clock.advance(LEASE * 2)
    await ledger.complete(lease, RESULT)  # nobody else did the work: the result stands
    assert isinstance(await worker(store, clock, "w2").claim(UNIT, "md5:AAA"), AlreadyDone)


async def test_release_lets_a_redelivery_take_over_at_once(
    store: IdempotencyStore, clock: FakeClock
) -> None:
    first = worker(store, clock, "w1")
    lease = claimed(await first.claim(UNIT, "md5:AAA")).lease
    await first.release(lease)
    clock.advance(0.001)
    again = claimed(await worker(store, clock, "w2").claim(UNIT, "md5:AAA"))
    assert again.takeover
    with pytest.raises(LeaseLostError):
        await first.complete(lease, RESULT)


async def test_heartbeat_renews_while_the_body_runs(
    store: IdempotencyStore, clock: FakeClock
) -> None:
    ledger = worker(store, clock)
    lease = claimed(await ledger.claim(UNIT, "md5:AAA")).lease
    async with ledger.heartbeat(lease, every_seconds=0.01) as holder:
        for _ in range(500):  # bounded: a renewal is due every 10 ms
            if holder.lease.version != lease.version:
                break
            clock.advance(1)
            await asyncio.sleep(0.01)
        assert holder.lease.version != lease.version
    renewed = holder.lease.record.lease_expires_at
    assert renewed > lease.record.lease_expires_at
    stored = await store.get(UNIT.digest)
    assert stored is not None
    assert stored.version == holder.lease.version
    await ledger.complete(holder.lease, RESULT)  # the latest lease is the one that counts


async def test_heartbeat_does_not_renew_while_the_unit_is_not_alive(
    store: IdempotencyStore, clock: FakeClock
) -> None:
    ledger = worker(store, clock)
    lease = claimed(await ledger.claim(UNIT, "md5:AAA")).lease
    asked: list[bool] = []

    def alive() -> bool:
        asked.append(len(asked) >= 3)  # stalled for three renewals, then moving again
        return asked[-1]

    async with ledger.heartbeat(lease, every_seconds=0.01, alive=alive) as holder:
        for _ in range(500):  # bounded: a renewal is due every 10 ms
            if len(asked) >= 3:
                break
            await asyncio.sleep(0.01)
        assert holder.lease.version == lease.version  # asked three times, renewed never
        for _ in range(500):
            if holder.lease.version != lease.version:
                break
            clock.advance(1)
            await asyncio.sleep(0.01)
        assert holder.lease.version != lease.version  # alive again: renewed again
    await ledger.complete(holder.lease, RESULT)


async def test_heartbeat_reports_a_lease_lost_during_the_body(
    store: IdempotencyStore, clock: FakeClock
) -> None:
    # The first worker's clock stands still (its renewals always end at t0 + LEASE); the
    # second one's is past that, as if the first had stalled: no race with the renewals.
    first, second = worker(store, FakeClock(), "w1"), worker(store, clock, "w2")
    lease = claimed(await first.claim(UNIT, "md5:AAA")).lease
    clock.advance(LEASE + 1)
    with pytest.raises(LeaseLostError):
        async with first.heartbeat(lease, every_seconds=0.01) as holder:
            claimed(await second.claim(UNIT, "md5:AAA"))  # another worker takes over
            for _ in range(500):  # bounded: the next renewal notices
                if holder.lost is not None:
                    break
                await asyncio.sleep(0.01)
    stored = await store.get(UNIT.digest)
    assert stored is not None
    assert stored.record.owner == "w2"


# --- fingerprints and forced re-runs ----------------------------------------------------------


async def test_same_key_with_other_content_is_refused_and_logged(
    store: IdempotencyStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = worker(store, clock)
    lease = claimed(await ledger.claim(UNIT, "md5:AAA", event_id="e1")).lease
    await ledger.complete(lease, RESULT)
    with caplog.at_level(logging.WARNING, logger="service.ledger"):
        refused = await worker(store, clock, "w2").claim(UNIT, "md5:BBB", event_id="e2")
    assert isinstance(refused, FingerprintMismatch)
    assert refused.fingerprint == "md5:BBB"
    assert refused.record.fingerprint == "md5:AAA"
    [logged] = [r for r in caplog.records if r.name == "service.ledger"]
    assert "md5:AAA" in logged.getMessage()
    assert "md5:BBB" in logged.getMessage()
    assert getattr(logged, "event_id", None) == "e2"
    stored = await store.get(UNIT.digest)
    assert stored is not None
    assert (stored.record.fingerprint, stored.record.result) == ("md5:AAA", RESULT)


async def test_fingerprints_of_different_kinds_do_not_conflict(
    store: IdempotencyStore, clock: FakeClock
) -> None:
    ledger = worker(store, clock)
    lease = claimed(await ledger.claim(UNIT, "md5:AAA")).lease
    await ledger.complete(lease, RESULT)
    assert isinstance(await ledger.claim(UNIT, "crc32c:xyz"), AlreadyDone)
    assert isinstance(await ledger.claim(UNIT, f"generation:{UNIT.generation}"), AlreadyDone)


@pytest.mark.parametrize("finish", ["complete", "fail"])
async def test_forced_rerun_of_a_finished_unit(
    store: IdempotencyStore, clock: FakeClock, finish: str
) -> None:
    ledger = worker(store, clock)
    lease = claimed(await ledger.claim(UNIT, "md5:AAA")).lease
    if finish == "complete":
        await ledger.complete(lease, RESULT)
    else:
        await ledger.fail(lease, "load: table missing")
    clock.advance(1)
    rerun = claimed(await worker(store, clock, "w2").claim(UNIT, "md5:AAA", force=True))
    assert rerun.takeover
    rec = rerun.lease.record
    assert (rec.state, rec.owner, rec.attempt, rec.result, rec.error) == (
        UnitState.IN_PROGRESS,
        "w2",
        2,
        None,
        None,
    )
    assert isinstance(await ledger.claim(UNIT, "md5:AAA"), Busy)  # the re-run holds a lease
    with pytest.raises(LeaseLostError):
        await ledger.complete(lease, RESULT)  # the first run's lease is long gone
    await worker(store, clock, "w2").complete(rerun.lease, replace(RESULT, rows_loaded=5))
    done = await ledger.claim(UNIT, "md5:AAA")
    assert isinstance(done, AlreadyDone)
    assert done.record.result is not None
    assert done.record.result.rows_loaded == 5


async def test_force_accepts_new_content_for_a_finished_unit(
    store: IdempotencyStore, clock: FakeClock
) -> None:
    ledger = worker(store, clock)
    lease = claimed(await ledger.claim(UNIT, "md5:AAA")).lease
    await ledger.complete(lease, RESULT)
    rerun = claimed(await ledger.claim(UNIT, "md5:BBB", force=True))
    assert rerun.lease.record.fingerprint == "md5:BBB"


@pytest.mark.parametrize("ending", ["fail", "expire", "live", "complete"])
async def test_a_claim_the_object_agrees_with_takes_over_a_false_record(
    store: IdempotencyStore, clock: FakeClock, ending: str
) -> None:
    """The stored object judges two events of one generation: a record from the false one
    yields, unless it completed (rows are loaded) or its lease is still live (busy)."""
    ledger = worker(store, clock)
    lease = claimed(await ledger.claim(UNIT, "md5:FALSE", event_id="e1")).lease
    if ending == "fail":
        await ledger.fail(lease, "extract: object md5 does not match the event's checksum")
    elif ending == "complete":
        await ledger.complete(lease, RESULT)
    elif ending == "expire":
        clock.advance(LEASE + 1)
    judged = await worker(store, clock, "w2").claim(
        UNIT, "md5:TRUE", event_id="e2", object_agrees=True
    )
    if ending == "live":
        assert isinstance(judged, Busy)
    elif ending == "complete":
        assert isinstance(judged, FingerprintMismatch)
    else:
        rec = claimed(judged).lease.record
        assert (rec.state, rec.owner, rec.fingerprint, rec.attempt, rec.event_id) == (
            UnitState.IN_PROGRESS,
            "w2",
            "md5:TRUE",
            2,
            "e2",
        )
    unjudged = await worker(store, clock, "w3").claim(UNIT, "md5:OTHER", event_id="e3")
    assert isinstance(unjudged, FingerprintMismatch)  # without the object's word: refused


async def test_the_job_id_is_recorded_and_kept_by_a_takeover_of_a_dead_attempt(
    store: IdempotencyStore, clock: FakeClock
) -> None:
    first = claimed(await worker(store, clock, "w1").claim(UNIT, "md5:AAA", job_id="job_v1"))
    assert first.lease.record.job_id == "job_v1"
    clock.advance(LEASE + 1)
    # A new deploy derives another job id; the dead attempt may have submitted under its own.
    taken = claimed(await worker(store, clock, "w2").claim(UNIT, "md5:AAA", job_id="job_v2"))
    assert taken.takeover
    assert taken.lease.record.job_id == "job_v1"
    stored = await store.get(UNIT.digest)
    assert stored is not None and stored.record.job_id == "job_v1"
    await worker(store, clock, "w2").complete(taken.lease, RESULT)
    rerun = claimed(
        await worker(store, clock, "w3").claim(UNIT, "md5:AAA", force=True, job_id="job_v2")
    )
    assert rerun.lease.record.job_id == "job_v2"  # a forced re-run is meant to run anew


# --- a name's last completed generation -----------------------------------------------------


def generation_of(unit: UnitKey, generation: int) -> UnitKey:
    return replace(unit, generation=generation)


async def test_last_completed_is_the_names_highest_completed_generation(
    store: IdempotencyStore, clock: FakeClock
) -> None:
    ledger = worker(store, clock)
    for generation, ending in [(3, "complete"), (9, "complete"), (5, "complete"), (12, "fail")]:
        lease = claimed(await ledger.claim(generation_of(UNIT, generation), "md5:AAA")).lease
        if ending == "complete":
            await ledger.complete(lease, RESULT)
        else:
            await ledger.fail(lease, "parse: broken")
    claimed(await ledger.claim(generation_of(UNIT, 20), "md5:AAA"))  # still running
    other_pipeline = UnitKey("returns", UNIT.bucket, UNIT.name, 40)
    other_name = UnitKey(UNIT.pipeline, UNIT.bucket, UNIT.name + ".bak", 50)
    for other in (other_pipeline, other_name):
        await ledger.complete(claimed(await ledger.claim(other, "md5:AAA")).lease, RESULT)
    last = await ledger.last_completed(generation_of(UNIT, 21))
    assert last is not None
    assert (last.unit, last.generation, last.state) == (
        str(generation_of(UNIT, 9)),
        9,
        UnitState.COMPLETED,
    )
    assert await ledger.last_completed(UnitKey("nobody", "b", "n", 1)) is None


async def test_a_claim_keeps_the_checksums_later_generations_compare_with(
    store: IdempotencyStore, clock: FakeClock
) -> None:
    ledger = worker(store, clock)
    lease = claimed(await ledger.claim(UNIT, "md5:AAA", crc32c="c1w==")).lease
    await ledger.complete(lease, RESULT)
    last = await ledger.last_completed(UNIT)
    assert last is not None
    assert (last.fingerprint, last.crc32c, last.name_key) == ("md5:AAA", "c1w==", UNIT.name_digest)


# Fields a record gained after records were first written: older documents lack them.
NEWER_FIELDS = ("job_id", "name_key", "generation", "crc32c")


async def write_older_document(store: IdempotencyStore, rec: LedgerRecord) -> None:
    """Store ``rec`` as a version before NEWER_FIELDS wrote it, past the adapter's encoder."""
    doc = {k: v for k, v in to_doc(rec).items() if k not in NEWER_FIELDS}
    if isinstance(store, SqliteLedgerStore):
        with contextlib.closing(sqlite3.connect(store.path)) as conn, conn:
            conn.execute(
                "INSERT INTO ledger (key, version, state, updated_at, doc) VALUES (?, 1, ?, ?, ?)",
                (
                    rec.key,
                    rec.state.value,
                    doc["updated_at"].isoformat(),
                    json.dumps(doc, default=json_default),
                ),
            )
    elif isinstance(store, FirestoreLedgerStore):
        await store.collection.document(rec.key).set(doc)
    else:
        pytest.skip("the memory store keeps records, not documents")


async def test_a_record_from_before_the_job_id_still_reads_and_is_taken_over(
    store: IdempotencyStore, clock: FakeClock
) -> None:
    old = record(UNIT.digest, unit=str(UNIT), lease_expires_at=clock.now - timedelta(seconds=1))
    await write_older_document(store, old)
    stored = await store.get(UNIT.digest)
    assert stored is not None and stored.record == old and stored.record.job_id is None
    await write_older_document(store, record("k-done", state=UnitState.COMPLETED, result=RESULT))
    assert await store.last_completed(UNIT.name_digest) is None  # not findable, no error
    taken = claimed(await worker(store, clock, "w2").claim(UNIT, "md5:AAA", job_id="job_v2"))
    assert (taken.lease.record.attempt, taken.lease.record.job_id) == (2, "job_v2")


# --- Firestore only ---------------------------------------------------------------------------


@pytest.mark.emulators
async def test_firestore_database_is_configurable(emulators: Emulators, unique: str) -> None:
    """Named databases keep their own ledgers, for the raw RPCs and the list query alike."""
    named = FirestoreLedgerStore.from_settings(
        emulators.settings(ledger_collection=unique, firestore_database="ledger-two")
    )
    default = FirestoreLedgerStore.from_settings(emulators.settings(ledger_collection=unique))
    try:
        assert await named.create(record()) is not None
        assert await default.get("k1") is None
        assert await default.list() == []
        assert [s.record.key for s in await named.list()] == ["k1"]
        assert await default.create(record(owner="w2")) is not None  # no clash across databases
        stored = await named.get("k1")
        assert stored is not None
        assert stored.record.owner == "w1"
    finally:
        await named.close()
        await default.close()
