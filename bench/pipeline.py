"""How fast, and in how much memory, the pipeline takes a CSV object to the warehouse client.

In one run, the whole process pinned to ONE core (so idle cores cannot move the ratios), against
the same generated CSV (ints, floats, strings, timestamps), wall time and CPU seconds of:

- ``reader``: pyarrow's streaming CSV reader with the same explicit column types, one thread:
  the physical limit of parsing, and the baseline of every ratio;
- ``stream``: the service's Write API path (extract with the CRC32C check, parse, validate,
  transform, Arrow IPC + AppendRows request serialization), the network excluded;
- ``load_job``: the load-job path (the same, spooled to Parquet), the job itself excluded; the
  spool in memory (/dev/shm), as Cloud Run keeps temporary files (``--disk-spool``: on disk);
- ``embedded``: one unit into the embedded DuckDB through the stream path (rows committed), and
  ``duckdb_ctas``: DuckDB's own ``CREATE TABLE AS SELECT * FROM read_csv`` with explicit types;
- ``dictreader``: a naive ``csv.DictReader`` pipeline writing the same Parquet;
- the embedded unit's peak RSS (the DuckDB insert included) for 100 MB and 1 GB, each in a
  fresh subprocess.

    .venv/bin/python bench/pipeline.py [--size-mb 200] [--repeat 3] [--profile] [--disk-spool]

Files go to bench/out/ (ignored by git) and are deleted at the end. The last line is
``ratio_stream=X ratio_load_job=Y cpu_ratio_stream=Z ratio_vs_duckdb=V ratio_vs_dictreader=W
rss_100mb=A rss_1gb=B``: X, Y = the path's throughput over the reader's (wall), Z = the same in
CPU seconds, V = the embedded unit's throughput over DuckDB's CTAS, W = the load-job path's
over the DictReader pipeline's (both write Parquet); A, B in MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import csv
import hashlib
import json
import logging
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import google_crc32c
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stream_paths import (  # noqa: E402
    SendOnly,
    duckdb_ctas,
    embedded_fresh,
    run_stream,
    streaming_reader,
)
from service import allocator  # noqa: E402
from service.adapters.local.directory_store import DirectoryObjectStore  # noqa: E402
from service.adapters.local.dry import DryWarehouse  # noqa: E402
from service.models import (  # noqa: E402
    Column,
    EventMeta,
    ObjectRef,
    TableSpec,
    UnitKey,
    UnitResult,
)
from service.pipeline import csv_format  # noqa: E402
from service.pipeline.context import UnitContext  # noqa: E402
from service.pipeline.definition import BadRowPolicy, Pipeline  # noqa: E402
from service.pipeline.feed import Feed  # noqa: E402
from service.pipeline.runner import Runner  # noqa: E402
from service.pipeline.spool import ParquetSpool  # noqa: E402
from service.pipeline.transform import Transformer  # noqa: E402

MIB = 1024 * 1024
OUT = ROOT / "bench" / "out"
BUCKET = "bench"
SHM = "/dev/shm"  # a tmpfs, as Cloud Run's file system is memory
ROWS_PER_CHUNK = 200_000
# The table the generated file loads into: every kind of column the issue names.
SCHEMA = (
    Column("id", "INTEGER", "REQUIRED"),
    Column("customer_id", "INTEGER"),
    Column("quantity", "INTEGER"),
    Column("amount", "FLOAT"),
    Column("price", "FLOAT"),
    Column("product", "STRING"),
    Column("city", "STRING"),
    Column("note", "STRING"),
    Column("created_at", "TIMESTAMP", "REQUIRED"),
    Column("updated_at", "TIMESTAMP"),
)
CITIES = ["Paris", "Zürich", "London", "New York", "São Paulo", "Tokyo", "Lagos", "Oslo"]


# ---- the data -------------------------------------------------------------------------------


def generate(path: Path, target_bytes: int, seed: int = 7) -> int:
    """Write a CSV of at least ``target_bytes``; returns its row count."""
    rows = 0
    options = pacsv.WriteOptions(include_header=True, quoting_style="needed")
    with pacsv.CSVWriter(str(path), _file_schema(), write_options=options) as writer:
        while path.stat().st_size < target_bytes:
            writer.write_batch(_chunk(seed + rows, rows))
            rows += ROWS_PER_CHUNK
    return rows


def describe(path: Path, generation: int = 1) -> None:
    """The object's metadata as the directory store keeps it: MD5 and CRC32C, as a storage
    event carries them; extract verifies the CRC32C (the MD5 when there is no CRC32C)."""
    md5 = hashlib.md5(usedforsecurity=False)
    crc = google_crc32c.Checksum()
    with path.open("rb") as handle:
        while block := handle.read(8 * MIB):
            md5.update(block)
            crc.update(block)
    meta = path.parent.parent / ".meta" / path.parent.name / f"{path.name}.json"
    meta.parent.mkdir(parents=True, exist_ok=True)
    digests = {
        "md5": base64.b64encode(md5.digest()).decode(),
        "crc32c": base64.b64encode(crc.digest()).decode(),
    }
    meta.write_text(json.dumps({"generation": generation, "content_type": "text/csv", **digests}))


def _file_schema() -> pa.Schema:
    """Numbers are written as numbers (unquoted), text and times as quoted strings, as most
    exporters write them."""
    kinds = {"INTEGER": pa.int64(), "FLOAT": pa.float64()}
    return pa.schema([(c.name, kinds.get(c.type, pa.string())) for c in SCHEMA])


def _ints(seed: int, high: int) -> pa.Array:
    """Uniform integers in [0, high), from pyarrow's own generator (numpy is not installed)."""
    noise = pc.random(ROWS_PER_CHUNK, initializer=seed)
    return pc.cast(pc.floor(pc.multiply(noise, high)), pa.int64())


def _text(array: pa.Array) -> pa.Array:
    return pc.cast(array, pa.string())


def _chunk(seed: int, first: int) -> pa.RecordBatch:
    n = ROWS_PER_CHUNK
    start = pa.scalar(datetime(2026, 1, 1), pa.timestamp("s"))
    seconds = _ints(seed, 300 * 86400)
    created = pc.add(start, pc.cast(seconds, pa.duration("s")))
    micros = pc.add(pc.multiply(seconds, 1_000_000), _ints(seed + 1, 10**6))
    updated = pc.add(
        pa.scalar(datetime(2026, 1, 1), pa.timestamp("us")), pc.cast(micros, pa.duration("us"))
    )
    amount = pc.divide(pc.cast(_ints(seed + 2, 100_000), pa.float64()), 100.0)
    price = pc.divide(pc.cast(_ints(seed + 3, 1_000_000), pa.float64()), 10_000.0)
    blank = pc.less(pc.random(n, initializer=seed + 4), 0.2)
    notes = pc.binary_join_element_wise("note ", _text(_ints(seed + 5, 10**6)), "")
    columns = [
        pa.array(range(first, first + n), pa.int64()),
        pc.add(_ints(seed + 6, 10**7), 1),
        pc.add(_ints(seed + 7, 99), 1),
        amount,
        price,
        pc.binary_join_element_wise("product-", _text(_ints(seed + 8, 50_000)), ""),
        pc.take(pa.array(CITIES), _ints(seed + 9, len(CITIES))),
        pc.if_else(blank, pa.scalar("", pa.string()), notes),
        pc.strftime(created, format="%Y-%m-%dT%H:%M:%SZ"),
        pc.strftime(updated, format="%Y-%m-%d %H:%M:%S"),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=_file_schema())


# ---- the service's pipeline -----------------------------------------------------------------


def no_warehouse() -> DryWarehouse:
    """The warehouse call is excluded: the load-ready Parquet file is where the clock stops."""
    return DryWarehouse(keep_rows=0)


def pipeline() -> Pipeline:
    return Pipeline(
        name="bench",
        bucket=BUCKET,
        table=TableSpec("bench.rows", SCHEMA),
        bad_rows=BadRowPolicy(max_count=0, max_ratio=None),
    )


async def run_pipeline(path: Path, *, verify: str = "crc32c") -> UnitResult:
    """One unit through the runner; the object is the file as it lies in the store's folder.

    ``verify``: "crc32c", the event carries MD5 and CRC32C (as every storage event does) and
    extract checks the CRC32C; "md5", the event carries only an MD5; "none", no checksum at all
    (a file put there by hand).
    """
    root = path.parent.parent
    store = DirectoryObjectStore(root)
    info = await store.stat(ObjectRef(BUCKET, path.name))
    if verify == "md5":
        info = replace(info, crc32c_base64=None)
    elif verify == "none":
        info = replace(info, md5_base64=None, crc32c_base64=None)
    runner = Runner(store, no_warehouse(), chunk_bytes=MIB)
    p = pipeline()
    assert info.ref.generation is not None
    key = UnitKey(p.name, BUCKET, path.name, info.ref.generation)
    ctx = runner.context(key, p, info, EventMeta("bench", "bench", "bench"))
    return await runner.run(ctx)


# ---- the baselines --------------------------------------------------------------------------


def pyarrow_read(path: Path) -> int:
    rows: int = pacsv.read_csv(path).num_rows
    return rows


def dictreader_pipeline(path: Path, out: Path) -> int:
    """The naive way: a dict per row, Python checks per value, rows gathered into Parquet."""
    schema = pa.schema([(c.name, _arrow_type(c.type)) for c in SCHEMA])
    convert: dict[str, Callable[[str], Any]] = {c.name: CONVERT[c.type] for c in SCHEMA}
    required = {c.name for c in SCHEMA if c.required}
    rows = bad = 0
    pending: dict[str, list[Any]] = {c.name: [] for c in SCHEMA}
    with path.open(newline="", encoding="utf-8") as handle, pq.ParquetWriter(out, schema) as w:
        for record in csv.DictReader(handle):
            rows += 1
            try:
                values = {k: (convert[k](v) if v != "" else None) for k, v in record.items()}
                if any(values[k] is None for k in required):
                    raise ValueError("required value missing")
            except (ValueError, KeyError):
                bad += 1
                continue
            for k, v in values.items():
                pending[k].append(v)
            if len(pending["id"]) >= ROWS_PER_CHUNK:
                w.write_table(pa.table(pending, schema=schema))
                pending = {c.name: [] for c in SCHEMA}
        w.write_table(pa.table(pending, schema=schema))
    return rows - bad


def _timestamp(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# The naive pipeline's converter for each BigQuery type.
CONVERT: dict[str, Callable[[str], Any]] = {
    "INTEGER": int,
    "FLOAT": float,
    "STRING": str,
    "TIMESTAMP": _timestamp,
    "DATE": date.fromisoformat,
    "NUMERIC": Decimal,
}


def _arrow_type(kind: str) -> pa.DataType:
    # The naive pipeline's Arrow type for each BigQuery type (matches the service's).
    return {
        "INTEGER": pa.int64(),
        "FLOAT": pa.float64(),
        "STRING": pa.string(),
        "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    }[kind]


# ---- measuring ------------------------------------------------------------------------------


@dataclass
class Timing:
    name: str
    seconds: float
    rows: int
    cpu: float = float("nan")


def interleaved(repeat: int, works: dict[str, Callable[[], int]]) -> list[Timing]:
    """Each work once per round, in turn, ``repeat`` rounds; the best wall and CPU time of
    each. Turns share whatever else the machine is doing, so the ratios stay fair."""
    best = dict.fromkeys(works, float("inf"))
    cpu = dict.fromkeys(works, float("inf"))
    rows = dict.fromkeys(works, 0)
    for _ in range(repeat):
        for name, work in works.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            rows[name] = work()
            best[name] = min(best[name], time.perf_counter() - started)
            cpu[name] = min(cpu[name], time.process_time() - cpu_started)
    return [Timing(name, best[name], rows[name], cpu[name]) for name in works]


def peak_rss_mib(path: Path) -> float:
    """The pipeline on ``path`` in a fresh Python process; the peak RSS that process reports.

    The child reads its own VmHWM: the kernel's rusage figure would include the parent's
    memory at fork time (it is carried over exec), which is not the pipeline's.
    """
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    peak: float = json.loads(out.splitlines()[-1])["peak_rss_kib"] / 1024
    return peak


class FileFeed(Feed):
    """The parse stage's feed, its chunks taken straight from the file in this thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, chunks: Iterator[bytes]) -> None:
        super().__init__(loop)
        self._chunks = chunks

    def get(self) -> bytes | None:
        chunk = next(self._chunks, None)
        self.consumed += len(chunk or b"")
        return chunk


def profile(path: Path) -> None:
    """Where the CPU goes: the pipeline's steps run one after another in this thread, a batch
    at a time as the runner does, each step's CPU time summed; then cProfile's heaviest
    functions (pyarrow's C++ shows under its Python entry points: streamed_batches, cast,
    write_table...)."""
    p = pipeline()
    info = asyncio.run(DirectoryObjectStore(path.parent.parent).stat(ObjectRef(BUCKET, path.name)))
    assert info.ref.generation is not None
    key = UnitKey(p.name, BUCKET, path.name, info.ref.generation)
    ctx = UnitContext(key, p, info, EventMeta("bench", "b", "b"), datetime.now(UTC))
    cpu: dict[str, float] = {}
    profiler = cProfile.Profile()

    def timed(step: str, work: Callable[[], Any]) -> Any:
        started = time.thread_time()
        profiler.enable()
        try:
            return work()
        finally:
            profiler.disable()
            cpu[step] = cpu.get(step, 0.0) + time.thread_time() - started

    # Read first: pyarrow's reader pulls its bytes in a thread of its own, which this thread's
    # clock would not see.
    digest = google_crc32c.Checksum()
    read: list[bytes] = []
    with path.open("rb") as handle:
        while chunk := timed("read", lambda: handle.read(MIB)):
            timed("crc32c", lambda c=chunk: digest.update(c))  # type: ignore[misc]
            read.append(chunk)

    loop = asyncio.new_event_loop()
    source = FileFeed(loop, iter(read))
    batches = csv_format.csv_batches(p, source, None, reread=lambda unsettled: source)
    transformer = Transformer(ctx)
    spool = ParquetSpool(transformer.schema, path.parent)
    while (item := timed("parse", lambda: next(batches, None))) is not None:
        out = timed("validate", lambda b=item: transformer(b.batch, b.rows))  # type: ignore[misc]
        timed("parquet", lambda o=out: spool._writer.write_batch(o.batch))  # type: ignore[misc]
    timed("parquet", spool._writer.close)
    spool.path.unlink()
    loop.close()
    total = sum(cpu.values())
    print("CPU seconds by step, one thread, one batch at a time:")
    for step, seconds in cpu.items():
        print(f"  {step:>9}: {seconds:6.2f}s  {seconds / total:5.1%}")
    print(f"  {'total':>9}: {total:6.2f}s")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(12)


def child(path: Path) -> None:
    """The embedded unit, the DuckDB insert included: what a deployment's memory must hold."""
    rows = embedded_fresh(path, pipeline(), path.with_suffix(".duckdb"), MIB)
    path.with_suffix(".duckdb").unlink(missing_ok=True)
    status = Path("/proc/self/status").read_text()
    peak = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    print(json.dumps({"rows": rows, "peak_rss_kib": int(peak.split()[1])}))


def main() -> None:
    logging.disable(logging.WARNING)  # the no-op warehouse's row counts would be warned about
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--child", type=Path)
    parser.add_argument(
        "--disk-spool", action="store_true", help="temporary files on disk, not in memory"
    )
    args = parser.parse_args()
    if args.child:
        allocator.keep_large_blocks()
        child(args.child)
        return
    # One core for everything measured: parsing's limit is one core's, and idle cores that
    # come and go (other work on the machine) must not move the ratios.
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    pa.set_cpu_count(1)
    # The allocator as the service sets it when it builds its runner (service/allocator.py).
    print(f"allocator thresholds set: {allocator.keep_large_blocks()}")
    # The load-job path's spool goes where Cloud Run keeps temporary files: in memory (a tmpfs
    # here), or this machine's disk writeback would be timed (--disk-spool times it).
    if not args.disk_spool and Path(SHM).is_dir():
        tempfile.tempdir = SHM
    print(f"temporary files in {tempfile.gettempdir()}")
    workdir = OUT / f"pipeline-{os.getpid()}"
    (workdir / BUCKET).mkdir(parents=True)
    try:
        measure(workdir, args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        (OUT / "none.parquet").unlink(missing_ok=True)


def measure(workdir: Path, args: argparse.Namespace) -> None:
    data = workdir / BUCKET / "rows.csv"
    started = time.perf_counter()
    rows = generate(data, args.size_mb * MIB)
    describe(data)
    size = data.stat().st_size
    print(f"generated {size / MIB:.0f} MiB, {rows} rows in {time.perf_counter() - started:.1f}s")
    print(f"pinned to core {sorted(os.sched_getaffinity(0))} of {os.cpu_count()}")
    if args.profile:
        profile(data)
    db = workdir / "embedded.duckdb"
    timings = interleaved(
        args.repeat,
        {
            "reader": lambda: streaming_reader(data, pipeline(), frozenset({"updated_at"})),
            "stream": lambda: (
                asyncio.run(
                    run_stream(data, pipeline(), no_warehouse(), SendOnly(), MIB)
                ).rows_loaded
            ),
            "load_job": lambda: asyncio.run(run_pipeline(data)).rows_loaded,
            "embedded": lambda: embedded_fresh(data, pipeline(), db, MIB),
            "duckdb_ctas": lambda: duckdb_ctas(data, pipeline(), workdir / "ctas.duckdb"),
        },
    )
    naive = workdir / "naive.parquet"
    timings += interleaved(1, {"dictreader": lambda: dictreader_pipeline(data, naive)})
    t = {timing.name: timing for timing in timings}
    for timing in timings:
        rate = size / MIB / timing.seconds
        print(
            f"{timing.name:>12}: {timing.seconds:7.2f}s wall {timing.cpu:7.2f} CPU-s"
            f" {rate:7.1f} MiB/s {timing.rows} rows"
        )
    rss_small = rss_large = float("nan")
    if not args.skip_rss:
        rss_small, rss_large = rss_pair(workdir)
    reader = t["reader"]
    print(
        f"ratio_stream={reader.seconds / t['stream'].seconds:.2f} "
        f"ratio_load_job={reader.seconds / t['load_job'].seconds:.2f} "
        f"cpu_ratio_stream={reader.cpu / t['stream'].cpu:.2f} "
        f"ratio_vs_duckdb={t['duckdb_ctas'].seconds / t['embedded'].seconds:.2f} "
        f"ratio_vs_dictreader={t['dictreader'].seconds / t['load_job'].seconds:.1f} "
        f"rss_100mb={rss_small:.0f} rss_1gb={rss_large:.0f}"
    )


def rss_pair(workdir: Path) -> tuple[float, float]:
    figures = []
    for mib in (100, 1024):
        path = workdir / BUCKET / f"rss-{mib}.csv"
        generate(path, mib * MIB, seed=mib)
        describe(path)
        figures.append(peak_rss_mib(path))
        print(f"peak RSS for {path.stat().st_size / MIB:.0f} MiB: {figures[-1]:.0f} MiB")
        path.unlink()
    return figures[0], figures[1]


if __name__ == "__main__":
    main()
