"""Ledger throughput: claim+complete pairs per second, one at a time and many in flight.

Each unit is a real ``Ledger.claim`` of a new key (put-if-absent) followed by ``complete``
(compare-and-set on the version), so a pair is exactly the ledger traffic of one ingested file.
A third phase claims every completed unit again (the duplicate delivery: create refused + one
read). Stores: memory (the baseline the ratios are against), SQLite on a temporary file, and
Firestore on its emulator: a fresh one started here (stopped at the end), or the one named by
FIRESTORE_EMULATOR_HOST when that is set.

    .venv/bin/python bench/ledger.py [--units N] [--sequential N] [--inflight 50] [--quick]

Ends with: firestore_inflight_units_per_s=X target=300 met=yes|no
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.adapters.gcp.firestore import FirestoreLedgerStore  # noqa: E402
from service.adapters.local.sqlite_ledger import SqliteLedgerStore  # noqa: E402
from service.adapters.memory import MemoryLedgerStore  # noqa: E402
from service.ledger import AlreadyDone, Claimed, Ledger  # noqa: E402
from service.models import UnitKey, UnitResult  # noqa: E402
from service.ports import IdempotencyStore  # noqa: E402
from service.settings import Settings  # noqa: E402
from tests.emulators import ensure_installed, start_firestore, stop  # noqa: E402

TARGET = 300.0  # units/s with 50 in flight on the Firestore emulator (issue 4)
RESULT = UnitResult(rows_read=1000, rows_loaded=998, rows_quarantined=2, job_id="ingest_bench")


@dataclass(frozen=True)
class Figure:
    store: str
    phase: str
    units: int
    seconds: float
    cpu_seconds: float

    @property
    def per_second(self) -> float:
        return self.units / self.seconds


async def pairs(ledger: Ledger, keys: list[UnitKey], inflight: int) -> None:
    slots = asyncio.Semaphore(inflight)

    async def one(key: UnitKey) -> None:
        async with slots:
            claim = await ledger.claim(key, "md5:bench")
            if not isinstance(claim, Claimed):
                raise RuntimeError(f"{key}: expected a claim, got {type(claim).__name__}")
            await ledger.complete(claim.lease, RESULT)

    await asyncio.gather(*(one(k) for k in keys))


async def duplicates(ledger: Ledger, keys: list[UnitKey], inflight: int) -> None:
    slots = asyncio.Semaphore(inflight)

    async def one(key: UnitKey) -> None:
        async with slots:
            answer = await ledger.claim(key, "md5:bench")
            if not isinstance(answer, AlreadyDone):
                raise RuntimeError(f"{key}: expected done, got {type(answer).__name__}")

    await asyncio.gather(*(one(k) for k in keys))


async def timed(store: str, phase: str, work: Awaitable[None], units: int) -> Figure:
    """Run ``work`` (a coroutine does nothing until awaited) and time it, wall and CPU."""
    began, cpu = time.perf_counter(), time.process_time()
    await work
    return Figure(store, phase, units, time.perf_counter() - began, time.process_time() - cpu)


def keys(prefix: str, count: int) -> list[UnitKey]:
    return [UnitKey("bench", "bucket", f"{prefix}/{i:06d}.csv", 1) for i in range(count)]


async def measure(
    name: str, store: IdempotencyStore, *, units: int, sequential: int, inflight: int, warm: int
) -> list[Figure]:
    ledger = Ledger(store, owner=f"bench-{name}", lease_seconds=600)
    run = uuid.uuid4().hex[:6]
    if warm:  # the emulator's JVM (and SQLite's page cache) answer slowly until warmed up
        await pairs(ledger, keys(f"{run}-warm", warm), inflight)
    one_by_one = keys(f"{run}-seq", sequential)
    many = keys(f"{run}-par", units)
    return [
        await timed(name, "sequential", pairs(ledger, one_by_one, 1), sequential),
        await timed(name, f"{inflight} in flight", pairs(ledger, many, inflight), units),
        await timed(name, "duplicates", duplicates(ledger, many, inflight), units),
    ]


@asynccontextmanager
async def firestore_store(workdir: Path) -> AsyncIterator[FirestoreLedgerStore]:
    host = Settings.from_env().firestore_emulator_host
    emulator = None
    if host is None:
        ensure_installed()
        emulator = start_firestore(workdir)
        host = emulator.endpoint
        os.environ["FIRESTORE_EMULATOR_HOST"] = host  # Google's SDK reads it itself
        print(f"started a Firestore emulator on {host} in {emulator.startup_seconds:.1f}s")
    else:
        print(f"using the Firestore emulator at {host}")
    settings = Settings(
        backend="gcp",
        project="bench",
        firestore_emulator_host=host,
        ledger_collection=f"bench-{uuid.uuid4().hex[:8]}",
    )
    store = FirestoreLedgerStore.from_settings(settings)
    try:
        yield store
    finally:
        await store.close()
        if emulator is not None:
            stop(emulator)


def report(figures: list[Figure]) -> None:
    baseline = {f.phase: f.per_second for f in figures if f.store == "memory"}
    print(
        f"{'store':<10} {'phase':<14} {'units':>6} {'seconds':>8} {'units/s':>9} "
        f"{'cpu ms/unit':>11} {'vs memory':>9}"
    )
    for f in figures:
        ratio = f.per_second / baseline[f.phase]
        print(
            f"{f.store:<10} {f.phase:<14} {f.units:>6} {f.seconds:>8.2f} {f.per_second:>9.0f} "
            f"{f.cpu_seconds / f.units * 1000:>11.2f} {ratio:>9.3f}"
        )


async def bench(units: int, sequential: int, inflight: int) -> float:
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        workdir = Path(tmp)
        memory = MemoryLedgerStore()
        figures += await measure(
            "memory", memory, units=units, sequential=sequential, inflight=inflight, warm=0
        )
        sqlite = SqliteLedgerStore(workdir / "ledger.sqlite3")
        figures += await measure(
            "sqlite", sqlite, units=units, sequential=sequential, inflight=inflight, warm=200
        )
        await sqlite.close()
        async with firestore_store(workdir) as firestore:
            figures += await measure(
                "firestore",
                firestore,
                units=units,
                sequential=sequential,
                inflight=inflight,
                warm=min(units, 2000),
            )
    report(figures)
    [best] = [f for f in figures if f.store == "firestore" and f.phase.endswith("in flight")]
    return best.per_second


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=3000, help="units with many in flight")
    parser.add_argument("--sequential", type=int, default=500, help="units one at a time")
    parser.add_argument("--inflight", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="500 and 100 units")
    args = parser.parse_args()
    units, sequential = (500, 100) if args.quick else (args.units, args.sequential)
    rate = asyncio.run(bench(units, sequential, args.inflight))
    met = "yes" if rate >= TARGET else "no"
    print(f"firestore_inflight_units_per_s={rate:.0f} target={TARGET:.0f} met={met}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
