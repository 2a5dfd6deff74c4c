"""How fast the pipeline takes a nested feed, beside the flat CSV of bench/pipeline.py.

In one run, interleaved on the same cores: the flat CSV (ints, floats, strings, timestamps), the
web-events feed of the tests (objects, arrays of objects, a JSON column of every shape,
timestamps, a time and a point) as NDJSON, and the same events as Parquet, each about
``--size-mb``; through the runner to load-ready Parquet, the warehouse call excluded.

    .venv/bin/python bench/nested.py [--size-mb 50] [--repeat 3]

The last line is ``ndjson_vs_csv=X parquet_vs_csv=Y`` (MB/s of the nested file over MB/s of
the CSV: 1.0 is as fast, lower is slower). Files go to bench/out/ and are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import pipeline as flat  # noqa: E402
from service.adapters.local.directory_store import DirectoryObjectStore  # noqa: E402
from service.models import EventMeta, ObjectRef, TableSpec, UnitKey  # noqa: E402
from service.pipeline.definition import Format  # noqa: E402
from service.pipeline.runner import Runner  # noqa: E402
from tests.pipeline_support import EVENTS, events_ndjson, events_parquet  # noqa: E402


def write_events(path: Path, target_bytes: int, fmt: Format) -> int:
    """The events feed in ``fmt``, of about ``target_bytes``; returns its row count."""
    probe = events_ndjson(1000)
    count = max(1000, target_bytes * 1000 // len(probe))
    path.write_bytes(events_ndjson(count) if fmt == "ndjson" else events_parquet(count))
    return count


async def run_events(path: Path, fmt: Format) -> int:
    store = DirectoryObjectStore(path.parent.parent)
    info = await store.stat(ObjectRef(flat.BUCKET, path.name))
    p = replace(flat.pipeline(), table=TableSpec("bench.events", EVENTS.columns), format=fmt)
    runner = Runner(store, flat.no_warehouse(), chunk_bytes=flat.MIB)
    assert info.ref.generation is not None
    key = UnitKey(p.name, flat.BUCKET, path.name, info.ref.generation)
    result = await runner.run(runner.context(key, p, info, EventMeta("bench", "bench", "bench")))
    assert result.rows_quarantined == 0, result
    return result.rows_loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    folder = flat.OUT / flat.BUCKET
    folder.mkdir(parents=True, exist_ok=True)
    target = args.size_mb * flat.MIB
    files = {"csv": folder / "flat.csv", "ndjson": folder / "events.json"}
    files["parquet"] = folder / "events.parquet"
    try:
        flat.generate(files["csv"], target)
        write_events(files["ndjson"], target, "ndjson")
        write_events(files["parquet"], target, "parquet")
        for path in files.values():
            flat.describe(path)
        timings = flat.interleaved(
            args.repeat,
            {
                "csv": lambda: asyncio.run(flat.run_pipeline(files["csv"])).rows_loaded,
                "ndjson": lambda: asyncio.run(run_events(files["ndjson"], "ndjson")),
                "parquet": lambda: asyncio.run(run_events(files["parquet"], "parquet")),
            },
        )
        speed = {}
        for t in timings:
            size = files[t.name].stat().st_size / flat.MIB
            speed[t.name] = size / t.seconds
            print(
                f"{t.name:8} {size:7.1f} MB {t.rows:9d} rows {t.seconds:6.2f} s"
                f" {speed[t.name]:7.1f} MB/s {t.rows / t.seconds:10.0f} rows/s"
            )
        print(
            f"ndjson_vs_csv={speed['ndjson'] / speed['csv']:.2f}"
            f" parquet_vs_csv={speed['parquet'] / speed['csv']:.2f}"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
