"""The SQLite ledger shared by several processes on one machine: still one winner per unit."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import queue
import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from service.adapters.local.sqlite_ledger import LAST_COMPLETED, SqliteLedgerStore
from service.ledger import Claimed, Ledger
from service.models import UnitKey, UnitResult, UnitState

PROCESSES = 3
KEYS = 20
CLAIMS_PER_KEY = 5  # in each process, at once
LEASE = 60.0
T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
JOIN_SECONDS = 120.0


def unit(i: int) -> UnitKey:
    return UnitKey("orders", "landing", f"orders/{i:03d}.csv", 1)


def contend(path: str, now: str, name: str, barrier: Any, out: Any) -> None:
    """One process: wait for the others, then claim every key several times at once."""
    barrier.wait(timeout=JOIN_SECONDS)
    out.put((name, asyncio.run(_contend(Path(path), datetime.fromisoformat(now), name))))


async def _contend(path: Path, now: datetime, name: str) -> list[tuple[int, str, bool]]:
    store = SqliteLedgerStore(path)
    try:
        return await asyncio.gather(
            *(_claim(store, now, name, i, n) for i in range(KEYS) for n in range(CLAIMS_PER_KEY))
        )
    finally:
        await store.close()


async def _claim(
    store: SqliteLedgerStore, now: datetime, name: str, i: int, n: int
) -> tuple[int, str, bool]:
    ledger = Ledger(store, owner=f"{name}-{n}", lease_seconds=LEASE, clock=lambda: now)
    outcome = await ledger.claim(unit(i), "md5:AAA")
    if isinstance(outcome, Claimed):
        await ledger.complete(outcome.lease, UnitResult(rows_loaded=i, job_id=f"j{i}"))
        return i, f"{name}-{n}", outcome.takeover
    return i, type(outcome).__name__, False


def run_processes(path: Path, now: datetime) -> list[tuple[int, str, bool]]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=contend, args=(str(path), now.isoformat(), f"p{p}", barrier, out))
        for p in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    try:
        return collect(out, procs)
    finally:
        for proc in procs:
            proc.join(timeout=10)  # it has reported: only its exit is left
            if proc.is_alive():
                proc.kill()
                proc.join()


def collect(out: Any, procs: list[Any]) -> list[tuple[int, str, bool]]:
    """Every process's outcomes; fails fast when one of them died instead of reporting."""
    results: list[tuple[int, str, bool]] = []
    reported = 0
    for _ in range(int(JOIN_SECONDS / 0.2)):  # bounded
        try:
            _, outcomes = out.get(timeout=0.2)
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            assert not dead, f"a contending process died (exit codes {dead})"
            continue
        results.extend(outcomes)
        reported += 1
        if reported == len(procs):
            return results
    raise AssertionError("the contending processes did not all report back")


def winners_by_key(results: list[tuple[int, str, bool]]) -> dict[int, list[tuple[str, bool]]]:
    found: dict[int, list[tuple[str, bool]]] = {i: [] for i in range(KEYS)}
    for i, who, takeover in results:
        if who not in {"Busy", "AlreadyDone", "AlreadyFailed", "FingerprintMismatch"}:
            found[i].append((who, takeover))
    return found


async def test_claims_from_several_processes_have_one_winner_per_unit(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    await SqliteLedgerStore(path).close()  # the schema exists before the race
    results = run_processes(path, T0)
    assert len(results) == PROCESSES * KEYS * CLAIMS_PER_KEY
    losers = Counter(who for _, who, _ in results if who in {"Busy", "AlreadyDone"})
    assert sum(losers.values()) == len(results) - KEYS
    winners = winners_by_key(results)
    assert all(len(w) == 1 for w in winners.values()), winners
    store = SqliteLedgerStore(path)
    for i, [(who, takeover)] in winners.items():
        assert not takeover
        stored = await store.get(unit(i).digest)
        assert stored is not None
        assert (stored.record.state, stored.record.owner) == (UnitState.COMPLETED, who)
        assert stored.record.result == UnitResult(rows_loaded=i, job_id=f"j{i}")
    await store.close()


async def test_takeovers_from_several_processes_have_one_winner_per_unit(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.sqlite3"
    store = SqliteLedgerStore(path)
    crashed = Ledger(store, owner="crashed", lease_seconds=LEASE, clock=lambda: T0)
    for i in range(KEYS):
        assert isinstance(await crashed.claim(unit(i), "md5:AAA"), Claimed)
    results = run_processes(path, T0 + timedelta(seconds=LEASE * 2))
    winners = winners_by_key(results)
    assert all(len(w) == 1 for w in winners.values()), winners
    for i, [(who, takeover)] in winners.items():
        assert takeover
        stored = await store.get(unit(i).digest)
        assert stored is not None
        assert (stored.record.owner, stored.record.attempt) == (who, 2)
        assert stored.record.state is UnitState.COMPLETED
    await store.close()


def test_a_names_last_completed_generation_is_one_index_seek(tmp_path: Path) -> None:
    """The query a claim makes is served by its index, not a scan of the ledger."""
    asyncio.run(SqliteLedgerStore(tmp_path / "l.sqlite3").close())  # creates the schema
    with contextlib.closing(sqlite3.connect(tmp_path / "l.sqlite3")) as conn:
        plan = conn.execute(f"EXPLAIN QUERY PLAN {LAST_COMPLETED}", ("k", "COMPLETED")).fetchall()
    [(_, _, _, detail)] = plan
    assert "USING INDEX ledger_name_state_generation" in detail
