"""Helpers for the pipeline tests: pipelines built in code, the embedded backends, one unit run.

A :class:`Rig` is a directory standing in for Cloud Storage and DuckDB standing in for
BigQuery, with the real runner between them, so a test can put bytes in, run one unit and
read back what landed, what was quarantined and what the unit reported.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from datetime import datetime, time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from service.adapters.local.directory_store import DirectoryObjectStore
from service.adapters.local.duckdb_warehouse import DuckDbWarehouse, qualified
from service.errors import RowsRejected, StageError
from service.models import (
    Column,
    EventMeta,
    LedgerRecord,
    ObjectInfo,
    TableSpec,
    UnitKey,
    UnitResult,
)
from service.pipeline.batches import ParsedBatch
from service.pipeline.context import UnitContext
from service.pipeline.definition import BadRowPolicy, Pipeline
from service.pipeline.feed import Feed
from service.pipeline.parse import parse_batches
from service.pipeline.quarantine import quarantine_ref
from service.pipeline.runner import Runner
from service.ports import IdempotencyStore

BUCKET = "landing"
TABLE = "sales.orders"
SCHEMA = (
    Column("id", "INTEGER", "REQUIRED"),
    Column("name", "STRING"),
    Column("amount", "NUMERIC"),
    Column("day", "DATE"),
)


def pipeline(**changes: Any) -> Pipeline:
    """A CSV pipeline into TABLE with SCHEMA, no lineage, up to half the rows bad."""
    base = Pipeline(
        name="orders",
        bucket=BUCKET,
        table=TableSpec(TABLE, SCHEMA, partition_field="day"),
        lineage=False,
        bad_rows=BadRowPolicy(max_count=None, max_ratio=0.5),
    )
    return replace(base, **changes)


def csv_rows(*rows: str, header: str = "id,name,amount,day") -> bytes:
    return ("\n".join((header, *rows)) + "\n").encode()


@dataclass
class Rejected:
    """A unit that failed permanently: the stage, the reason, the counts recorded."""

    stage: str
    reason: str
    result: UnitResult | None


class Rig:
    def __init__(self, root: Path, *, chunk_bytes: int = 64 * 1024) -> None:
        self.root = root
        self.store = DirectoryObjectStore(root / "buckets")
        self.warehouse = DuckDbWarehouse(root / "warehouse.duckdb")
        self.runner = Runner(self.store, self.warehouse, chunk_bytes=chunk_bytes)

    async def put(
        self,
        name: str,
        data: bytes,
        *,
        content_encoding: str | None = None,
        bucket: str = BUCKET,
    ) -> ObjectInfo:
        """Store an object; its info as an event would give it (size and MD5 included)."""
        ref = self.store.put(bucket, name, data, "application/octet-stream", content_encoding)
        return await self.store.stat(ref)

    def context(self, p: Pipeline, info: ObjectInfo, event_id: str = "e1") -> UnitContext:
        ref = info.ref
        assert ref.generation is not None
        key = UnitKey(p.name, ref.bucket, ref.name, ref.generation)
        return self.runner.context(key, p, info, EventMeta(event_id, "test", "test"))

    async def run(self, p: Pipeline, info: ObjectInfo) -> UnitResult:
        return await self.runner.run(self.context(p, info))

    async def reject(self, p: Pipeline, info: ObjectInfo) -> Rejected:
        try:
            result = await self.run(p, info)
        except StageError as exc:
            assert not exc.transient, f"expected a permanent failure, got {exc}"
            recorded = exc.cause.result if isinstance(exc.cause, RowsRejected) else None
            return Rejected(exc.stage, str(exc.cause), recorded)
        raise AssertionError(f"the unit loaded: {result}")

    async def rows(
        self, table: str = TABLE, order: str = "1", columns: str = "*"
    ) -> list[tuple[Any, ...]]:
        """The table's rows (TIMESTAMPTZ columns need a cast: DuckDB would want pytz)."""

        def query(conn: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
            sql = f"SELECT {columns} FROM {qualified(table)} ORDER BY {order}"
            return conn.execute(sql).fetchall()

        return await self.warehouse._run(query)

    def quarantine(self, p: Pipeline, info: ObjectInfo) -> list[dict[str, Any]]:
        ref = quarantine_ref(self.context(p, info))
        path = self.root / "buckets" / ref.bucket / ref.name
        return [json.loads(line) for line in path.read_text().splitlines()]

    def has_quarantine(self, p: Pipeline, info: ObjectInfo) -> bool:
        ref = quarantine_ref(self.context(p, info))
        return (self.root / "buckets" / ref.bucket / ref.name).exists()

    async def close(self) -> None:
        await self.warehouse.close()


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def full_feed(loop: asyncio.AbstractEventLoop, data: bytes, chunk: int) -> Feed:
    """A closed feed holding all of ``data``, ``chunk`` bytes a piece (callable off the loop)."""
    pieces = list(chunks(data, chunk))
    feed = Feed(loop, depth=len(pieces) + 1)
    for piece in pieces:
        feed._queue.put(piece)  # as put() would, without the loop: there is room for all
    feed.close()
    return feed


async def parse_all(
    p: Pipeline,
    data: bytes,
    chunk: int = 1000,
    workers: Executor | None = None,
    *,
    streamed: bool = True,
) -> list[ParsedBatch]:
    """Parse ``data`` as the parse stage would, fed ``chunk`` bytes at a time; ``streamed``
    False: CSV block by block only (no way to read the file again)."""
    loop = asyncio.get_running_loop()

    def reread(unsettled: int) -> Feed:
        return full_feed(loop, data, chunk)

    batches = parse_batches(
        p, full_feed(loop, data, chunk), workers, None, reread if streamed else None
    )
    return await asyncio.to_thread(list, batches)


def rows_of(batches: list[ParsedBatch]) -> list[dict[str, object]]:
    """Every row of the batches, as dicts."""
    found: list[dict[str, object]] = []
    for b in batches:
        found.extend(pa.Table.from_batches([b.batch]).to_pylist())
    return found


def text(value: object) -> object:
    return value.decode() if isinstance(value, bytes) else value


async def ledger_record(store: IdempotencyStore, p: Pipeline, info: ObjectInfo) -> LedgerRecord:
    """What the ledger holds for the unit of pipeline ``p`` and this object generation."""
    assert info.ref.generation is not None
    key = UnitKey(p.name, info.ref.bucket, info.ref.name, info.ref.generation)
    stored = await store.get(key.digest)
    assert stored is not None
    return stored.record


# A web-events feed as a new user brings it: objects, arrays of objects, a JSON column whose
# values take any shape, timestamps, a time of day and a point.
EVENTS = TableSpec(
    "web.events",
    (
        Column("id", "INTEGER", "REQUIRED"),
        Column("at", "TIMESTAMP"),
        Column(
            "user",
            "RECORD",
            fields=(
                Column("id", "STRING"),
                Column(
                    "geo", "RECORD", fields=(Column("country", "STRING"), Column("city", "STRING"))
                ),
            ),
        ),
        Column(
            "items",
            "RECORD",
            "REPEATED",
            fields=(
                Column("sku", "STRING", "REQUIRED"),
                Column("price", "NUMERIC"),
                Column("tags", "STRING", "REPEATED"),
            ),
        ),
        Column("payload", "JSON"),
        Column("took", "TIME"),
        # Top-level: the BigQuery emulator refuses GEOGRAPHY inside a RECORD (BigQuery allows it).
        Column("place", "GEOGRAPHY"),
    ),
)


def event(i: int) -> dict[str, Any]:
    """Event ``i`` as its NDJSON line holds it (payloads of every JSON shape in turn)."""
    payloads: list[Any] = [{"page": f"/p/{i}", "ref": None}, [i, "x"], "plain", None]
    return {
        "id": i,
        "at": f"2026-11-20T08:{i % 60:02d}:00Z",
        "user": {"id": f"u{i}", "geo": {"country": "FR", "city": None}},
        "items": [{"sku": f"s{i}-{n}", "price": n + 0.5, "tags": ["a"] * n} for n in range(i % 3)],
        "payload": payloads[i % 4],
        "took": "00:00:01.250000",
        "place": f"POINT({i} 45)",
    }


def events_ndjson(count: int) -> bytes:
    return b"".join(json.dumps(event(i)).encode() + b"\n" for i in range(count))


def events_parquet(count: int) -> bytes:
    """The same events as a Parquet producer writes them: typed timestamps, JSON as text."""
    rows = []
    for i in range(count):
        row = event(i)
        row["at"] = datetime.fromisoformat(row["at"])
        row["payload"] = None if row["payload"] is None else json.dumps(row["payload"])
        row["took"] = time(0, 0, 1, 250000)
        rows.append(row)
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    return sink.getvalue()


def event_files(count: int) -> list[tuple[str, str, bytes]]:
    """The events feed as an NDJSON and as a Parquet object: (name, format, bytes)."""
    return [
        ("events/a.json", "ndjson", events_ndjson(count)),
        ("events/a.parquet", "parquet", events_parquet(count)),
    ]
