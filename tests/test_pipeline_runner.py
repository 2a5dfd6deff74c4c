"""The runner end to end on the embedded backends: formats, bad input, and what is recorded.

Every case ends in a defined state: loaded (rows read = loaded + quarantined), rejected whole
(loaded 0, every row read counted as quarantined), or a file that could not be read (no counts,
the reason kept). The table is checked every time.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.errors import StageError
from service.models import Column, ObjectInfo, ObjectRef, TableSpec, UnitResult
from service.pipeline.definition import BadRowPolicy, CsvOptions, Pipeline, Transform
from service.pipeline.runner import Runner
from service.pipeline.spool_budget import mib
from tests.pipeline_support import (
    EVENTS,
    SCHEMA,
    TABLE,
    Rig,
    csv_rows,
    event,
    event_files,
    pipeline,
)

GOOD = csv_rows("1,a,1.50,2026-11-20", "2,b,2.25,2026-11-20", "3,c,,2026-11-20")


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    found = Rig(tmp_path)
    yield found
    await found.close()


def balanced(result: UnitResult) -> bool:
    return result.rows_read == result.rows_loaded + result.rows_quarantined


async def test_csv_loads_typed_rows(rig: Rig) -> None:
    info = await rig.put("orders/a.csv", GOOD)
    result = await rig.run(pipeline(), info)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (3, 3, 0)
    assert result.job_id and result.quarantine_uri is None
    assert set(result.durations) >= {"extract", "parse", "validate", "spool", "load"}
    assert await rig.rows() == [
        (1, "a", Decimal("1.5"), date(2026, 11, 20)),
        (2, "b", Decimal("2.25"), date(2026, 11, 20)),
        (3, "c", None, date(2026, 11, 20)),
    ]
    assert not rig.has_quarantine(pipeline(), info)


async def test_bad_rows_under_the_threshold_are_quarantined(rig: Rig) -> None:
    data = csv_rows(
        "1,a,1,2026-11-20",
        "x,b,2,2026-11-20",  # type error
        "3,c",  # wrong column count
        "4,\xff,3,2026-11-20",
        "5,e,5,2026-11-20",
        "6,f,6,2026-11-20",
        "7,g,not-a-number,2026-11-20",  # type error
        "8,h,8,2026-11-20",
        "9,i,9,2026-11-20",
        "10,j,10,2026-11-20",
    )
    data = data.replace("\xff".encode(), b"\xff")  # invalid UTF-8 in row 4
    info = await rig.put("orders/mixed.csv", data)
    result = await rig.run(pipeline(), info)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (10, 6, 4)
    assert balanced(result)
    assert [r[0] for r in await rig.rows()] == [1, 5, 6, 8, 9, 10]
    lines = rig.quarantine(pipeline(), info)
    assert [(line["row"], line["reason"].split(":")[0]) for line in lines] == [
        (2, "id"),
        (3, "expected 4 columns, found 2"),
        (4, "name"),
        (7, "amount"),
    ]
    assert lines[2]["reason"] == "name: not valid UTF-8"
    assert result.quarantine_uri is not None


async def test_bad_rows_over_the_threshold_reject_the_file_whole(rig: Rig) -> None:
    data = csv_rows("1,a,1,2026-11-20", "x,b,2,2026-11-20", "y,c,3,2026-11-20")
    info = await rig.put("orders/bad.csv", data)
    rejected = await rig.reject(pipeline(), info)
    assert rejected.stage == "validate"
    assert rejected.reason == (
        "2 of 3 rows bad, threshold 50%; most frequent: id: … is not a valid INTEGER (2)"
    )
    assert rejected.result is not None
    assert (rejected.result.rows_read, rejected.result.rows_loaded) == (3, 0)
    lines = rig.quarantine(pipeline(), info)
    assert [line["row"] for line in lines] == [2, 3, None]
    # The counts agree with the quarantine object: 2 bad rows in it, the good one rejected.
    assert (rejected.result.rows_quarantined, rejected.result.rows_rejected) == (2, 1)
    assert rejected.result.bad_reasons == {"id: … is not a valid INTEGER": 2}
    assert rejected.result.seconds is not None and rejected.result.seconds > 0
    assert lines[-1]["reason"] == rejected.reason
    assert not await rig.warehouse.tables()  # nothing was loaded, not even the table


async def test_a_count_limit_stops_reading_once_it_is_exceeded(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.pipeline import feed

    monkeypatch.setattr(feed, "BLOCK_BYTES", 256)
    rows = [f"{i},n,1,2026-11-20" if i % 2 else f"bad{i},n,1,2026-11-20" for i in range(1, 20001)]
    info = await rig.put("orders/garbage.csv", csv_rows(*rows))
    p = pipeline(bad_rows=BadRowPolicy(max_count=5, max_ratio=None))
    rejected = await rig.reject(p, info)
    assert rejected.result is not None
    assert "reading stopped at row" in rejected.reason
    assert 6 <= rejected.result.rows_read < 20000
    bad_lines = [line for line in rig.quarantine(p, info) if line["row"] is not None]
    assert rejected.result.rows_quarantined == len(bad_lines)
    counts = rejected.result.rows_quarantined + rejected.result.rows_rejected
    assert counts == rejected.result.rows_read


async def test_a_truncated_gzip_is_rejected_without_counts(rig: Rig) -> None:
    packed = gzip.compress(GOOD * 200)
    info = await rig.put("orders/cut.csv.gz", packed[:-20])
    rejected = await rig.reject(pipeline(), info)
    assert rejected.stage == "extract"
    assert "truncated" in rejected.reason
    assert rejected.result is not None and rejected.result.rows_read == 0
    assert balanced(rejected.result)
    assert not rig.has_quarantine(pipeline(), info)
    assert not await rig.warehouse.tables()


@pytest.mark.parametrize("data", [b"", b"id,name,amount,day\n"], ids=["empty", "header-only"])
async def test_empty_and_header_only_files_complete_with_no_rows(rig: Rig, data: bytes) -> None:
    info = await rig.put("orders/nothing.csv", data)
    result = await rig.run(pipeline(), info)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (0, 0, 0)
    assert await rig.rows() == []  # the table exists, empty


@pytest.mark.parametrize("lead", [b"\n", b"   \r\n"], ids=["newline", "spaces-crlf"])
async def test_a_blank_first_line_loses_no_rows(rig: Rig, lead: bytes) -> None:
    info = await rig.put(
        "orders/blank.csv", lead + csv_rows("1,a,1,2026-11-20", "2,b,2,2026-11-20")
    )
    result = await rig.run(pipeline(), info)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (2, 2, 0)
    assert len(await rig.rows()) == 2


async def test_a_blank_first_line_in_a_file_larger_than_the_feed_ends(rig: Rig) -> None:
    # Over 10 MB: more than the feed and the byte budget hold, so a parser that stopped
    # reading would leave extract waiting for room; the bound turns such a hang into a failure.
    lines = [f"{i},name{i},{i}.5,2026-11-20" for i in range(1, 400_001)]
    info = await rig.put("orders/big-blank.csv", b"\n" + csv_rows(*lines))
    result = await asyncio.wait_for(rig.run(pipeline(), info), timeout=120)
    assert (result.rows_read, result.rows_loaded) == (400_000, 400_000)


async def test_a_10_mb_line_is_one_row(rig: Rig) -> None:
    big = "x" * (10 * 1024 * 1024)
    info = await rig.put("orders/big.csv", csv_rows(f"1,{big},1,2026-11-20", "2,b,2,2026-11-20"))
    result = await rig.run(pipeline(), info)
    assert (result.rows_read, result.rows_loaded) == (2, 2)
    assert [len(r[1]) for r in await rig.rows()] == [len(big), 1]


async def test_a_10_mb_line_that_is_bad_is_quarantined_clipped(rig: Rig) -> None:
    big = "y" * (10 * 1024 * 1024)
    data = csv_rows(f"{big},b,1,2026-11-20", "2,b,2,2026-11-20", "3,c,3,2026-11-20")
    info = await rig.put("orders/bigbad.csv", data)
    result = await rig.run(pipeline(), info)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (3, 2, 1)
    [line] = rig.quarantine(pipeline(), info)
    assert line["row"] == 1 and len(line["raw"]) < 100_000


async def test_a_table_with_another_schema_rejects_the_file_at_load(rig: Rig) -> None:
    await rig.run(pipeline(), await rig.put("orders/first.csv", GOOD))
    other = TableSpec(TABLE, (Column("id", "STRING", "REQUIRED"), Column("name", "STRING")))
    info = await rig.put("orders/second.csv", csv_rows("9,z", header="id,name"))
    rejected = await rig.reject(pipeline(table=other), info)
    assert rejected.stage == "load"
    assert "exists with another schema" in rejected.reason
    assert rejected.result is not None
    assert (rejected.result.rows_read, rejected.result.rows_loaded) == (1, 0)
    # No row was bad: the quarantine object holds the reason only, the row was rejected.
    assert (rejected.result.rows_quarantined, rejected.result.rows_rejected) == (0, 1)
    [line] = rig.quarantine(pipeline(table=other), info)
    assert line["row"] is None
    assert len(await rig.rows()) == 3


async def test_ndjson_loads_and_quarantines_bad_lines(rig: Rig) -> None:
    lines = [
        {"id": 1, "name": "a", "amount": 1.5, "day": "2026-11-20"},
        {"id": "2", "amount": "2.25"},
        "{broken",
        {"id": None, "name": "no id"},
    ]
    data = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines).encode()
    info = await rig.put("orders/a.json", data)
    result = await rig.run(pipeline(format="ndjson"), info)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (4, 2, 2)
    assert await rig.rows() == [
        (1, "a", Decimal("1.5"), date(2026, 11, 20)),
        (2, None, Decimal("2.25"), None),
    ]
    reasons = [line["reason"] for line in rig.quarantine(pipeline(format="ndjson"), info)]
    assert reasons[0].startswith("not valid JSON") and reasons[1] == "id: required value is missing"


async def test_parquet_loads_with_its_own_types(rig: Rig) -> None:
    sink = io.BytesIO()
    table = pa.table(
        {
            "id": pa.array([1, 2, None], pa.int32()),
            "name": ["a", "b", "c"],
            "amount": pa.array([1.5, 2.0, 3.0]),
            "day": pa.array([datetime(2026, 11, 20, tzinfo=UTC)] * 3, pa.timestamp("ms", tz="UTC")),
        }
    )
    pq.write_table(table, sink)
    info = await rig.put("orders/a.parquet", sink.getvalue())
    result = await rig.run(pipeline(format="parquet"), info)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (3, 2, 1)
    assert await rig.rows() == [
        (1, "a", Decimal("1.5"), date(2026, 11, 20)),
        (2, "b", Decimal("2"), date(2026, 11, 20)),
    ]


async def test_gzip_csv_in_several_members_and_other_options(rig: Rig) -> None:
    body = "id;name;amount;day\n1;Émile;1;2026-11-20\n2;NA;NA;2026-11-20\n".encode("latin-1")
    packed = gzip.compress(body[:25]) + gzip.compress(body[25:])
    info = await rig.put("orders/latin.csv", packed, content_encoding="gzip")
    opts = CsvOptions(delimiter=";", null_values=("NA",), encoding="latin-1")
    result = await rig.run(pipeline(csv=opts), info)
    assert result.rows_loaded == 2
    assert [r[1] for r in await rig.rows()] == ["Émile", None]


async def test_utf16_with_a_bom(rig: Rig) -> None:
    info = await rig.put("orders/u16.csv", "id,name\n1,Zürich\n".encode("utf-16"))
    result = await rig.run(pipeline(csv=CsvOptions(encoding="utf-16")), info)
    assert result.rows_loaded == 1
    assert [r[1] for r in await rig.rows()] == ["Zürich"]


async def test_lineage_columns_are_loaded(rig: Rig) -> None:
    info = await rig.put("orders/a.csv", GOOD)
    await rig.run(pipeline(lineage=True), info)
    columns = "_source_uri, _source_generation, _event_id, epoch_us(_ingested_at)"
    rows = await rig.rows(columns=columns)
    assert len(rows) == 3
    assert rows[0][:3] == ("gs://landing/orders/a.csv", info.ref.generation, "e1")
    started = rig.context(pipeline(), info).started_at
    assert abs(rows[0][3] / 1e6 - started.timestamp()) < 600


def replacing(**changes: Any) -> Pipeline:
    return pipeline(write_mode="replace_partition", **changes)


async def test_replace_partition_from_the_path_replaces_that_day_only(rig: Rig) -> None:
    p = pipeline(write_mode="replace_partition")
    await rig.run(p, await rig.put("orders/2026-11-19.csv", csv_rows("1,a,1,2026-11-19")))
    await rig.run(
        p, await rig.put("orders/2026-11-20.csv", csv_rows("2,b,1,2026-11-20", "3,c,1,2026-11-20"))
    )
    fixed = csv_rows("4,d,1,2026-11-20", "5,e,1,2026-11-19")  # row 2 is another day's
    result = await rig.run(p, await rig.put("orders/2026-11-20.csv", fixed))
    assert (result.rows_loaded, result.rows_quarantined) == (1, 1)
    assert [r[0] for r in await rig.rows()] == [1, 4]


async def test_replace_partition_from_a_column_needs_one_day(rig: Rig) -> None:
    p = pipeline(write_mode="replace_partition", partition_date="column")
    await rig.run(
        p, await rig.put("orders/x.csv", csv_rows("1,a,1,2026-11-20", "2,b,1,2026-11-20"))
    )
    await rig.run(p, await rig.put("orders/y.csv", csv_rows("3,c,1,2026-11-20")))
    assert [r[0] for r in await rig.rows()] == [3]
    rejected = await rig.reject(
        p, await rig.put("orders/z.csv", csv_rows("4,d,1,2026-11-20", "5,e,1,2026-11-21"))
    )
    assert "spans 2 partitions" in rejected.reason
    assert [r[0] for r in await rig.rows()] == [3]


async def test_a_missing_object_names_the_stage_and_the_unit(rig: Rig) -> None:
    info = ObjectInfo(ObjectRef("landing", "orders/ghost.csv", 5), 10)
    with pytest.raises(StageError) as caught:
        await rig.run(pipeline(), info)
    assert caught.value.stage == "extract"
    assert "orders:gs://landing/orders/ghost.csv#5" in str(caught.value)
    assert not caught.value.transient


async def test_memory_stays_within_the_byte_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small budget, several files at once: every unit finishes (stages overlap and give
    bytes back as rows are spooled) and together they never hold more than the budget plus a
    few blocks per unit (what a parser waiting for input may take)."""
    from service.pipeline import feed

    block = 64 * 1024
    monkeypatch.setattr(feed, "BLOCK_BYTES", block)
    rig = Rig(tmp_path, chunk_bytes=16 * 1024)
    rig.runner = Runner(rig.store, rig.warehouse, chunk_bytes=16 * 1024, buffer_bytes=256 * 1024)
    body = csv_rows(*[f"{i},name {i},{i}.5,2026-11-20" for i in range(100_000)])
    infos = [await rig.put(f"orders/{n}.csv", body) for n in range(3)]
    results = await asyncio.wait_for(
        asyncio.gather(*(rig.run(pipeline(), info) for info in infos)), timeout=120
    )
    assert [r.rows_loaded for r in results] == [100_000] * 3
    budget = rig.runner.budget
    assert budget.used == 0
    per_unit = 8 * (block + 16 * 1024)  # blocks in the parser, the queues and the spool
    assert budget.peak <= budget.capacity + 3 * per_unit
    assert budget.peak < len(body)  # never anything like a whole file
    await rig.close()


async def test_the_format_examples_load_as_documented(rig: Rig) -> None:
    from service.pipeline.pipelines_file import load_pipelines
    from tests.conftest import EXAMPLES

    found = load_pipelines(EXAMPLES / "formats" / "pipelines.toml")
    data = EXAMPLES / "formats" / "data" / "landing"
    clicks, totals = found.get("clicks"), found.get("daily_totals")
    assert clicks is not None and totals is not None
    info = await rig.put(
        "clicks/2026-11-20.json", (data / "clicks" / "2026-11-20.json").read_bytes()
    )
    result = await rig.run(clicks, info)
    # The unknown "agent" field is ignored; a bad time and a missing session are quarantined.
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (5, 3, 2)
    assert result.quarantine_uri is not None
    assert result.quarantine_uri.startswith("gs://landing-quarantine/clicks/clicks/")
    name = "totals/2026-11-20/totals.csv"
    info = await rig.put(name, (data / name).read_bytes())
    result = await rig.run(totals, info)
    assert (result.rows_read, result.rows_loaded) == (3, 3)
    rows = await rig.rows("sales.daily_totals", columns="store, day, total, orders")
    assert rows == [
        ("Bern", date(2026, 11, 20), Decimal("88.1"), 4),
        ("Genève", date(2026, 11, 20), None, 0),
        ("Zürich", date(2026, 11, 20), Decimal("1234.5"), 31),
    ]


def small_spool(rig: Rig, size: int) -> Runner:
    rig.runner = Runner(rig.store, rig.warehouse, chunk_bytes=16 * 1024, spool_bytes=size)
    return rig.runner


async def test_rows_that_outgrow_the_spool_fail_the_unit_with_how_much_it_needed(
    rig: Rig,
) -> None:
    runner = small_spool(rig, 256 * 1024)
    body = csv_rows(*[f"{i},name {i},{i}.5,2026-11-20" for i in range(200_000)])
    info = await rig.put("orders/big.csv", body)
    rejected = await rig.reject(pipeline(), info)
    assert rejected.stage == "spool"
    assert "the validated rows needs more than" in rejected.reason
    assert "the instance allows 262144 bytes (INGEST_SPOOL_MAX_BYTES" in rejected.reason
    assert runner.spool_room.used == 0  # given back when the unit ended
    # The instance goes on: a file that fits loads.
    assert (await rig.run(pipeline(), await rig.put("orders/small.csv", GOOD))).rows_loaded == 3


async def test_a_parquet_file_larger_than_the_spool_fails_before_it_is_read(rig: Rig) -> None:
    runner = small_spool(rig, 64 * 1024)
    sink = io.BytesIO()
    names = [f"n{i:06d}" for i in range(50_000)]
    pq.write_table(pa.table({"id": list(range(50_000)), "name": names}), sink, compression="none")
    info = await rig.put("orders/big.parquet", sink.getvalue())
    assert info.size > 64 * 1024
    rejected = await rig.reject(pipeline(format="parquet"), info)
    assert rejected.stage == "extract"
    assert rejected.reason.startswith(f"the Parquet file needs {mib(info.size)} of spool")
    assert runner.spool_room.peak == 0  # nothing was spooled


async def test_quarantined_rows_count_against_the_spool(rig: Rig) -> None:
    small_spool(rig, 64 * 1024)
    body = csv_rows(*[f"x{i},name {i},{i}.5,2026-11-20" for i in range(5_000)])
    info = await rig.put("orders/bad.csv", body)
    p = pipeline(bad_rows=BadRowPolicy(max_ratio=1.0))
    rejected = await rig.reject(p, info)
    assert "the quarantined rows needs more than" in rejected.reason


async def test_a_unit_that_finds_the_spool_held_by_others_is_retried(rig: Rig) -> None:
    runner = small_spool(rig, 256 * 1024)
    other = runner.spool_room.account()
    other.take(250 * 1024, "another unit")
    info = await rig.put("orders/a.csv", csv_rows(*[f"{i},n,1,2026-11-20" for i in range(20_000)]))
    with pytest.raises(StageError) as caught:
        await rig.run(pipeline(), info)
    assert caught.value.transient
    assert "held by other units" in str(caught.value)
    other.release_all()
    assert (await rig.run(pipeline(), info)).rows_loaded == 20_000


async def test_a_file_still_being_read_at_the_deadline_fails_with_how_long_it_may_take(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow store (a chunk arrives after the deadline): the unit fails for good with a
    reason, instead of being cut off and starting over on every redelivery."""
    rig.runner = Runner(rig.store, rig.warehouse, chunk_bytes=1024, read_seconds=0.05)
    reads = rig.store.read
    slept = asyncio.Event()

    async def slow_read(ref: ObjectRef, chunk_bytes: int) -> AsyncIterator[bytes]:
        async for chunk in reads(ref, chunk_bytes):
            slept.set()
            await asyncio.sleep(30)  # cancelled at the deadline, long before this ends
            yield chunk

    monkeypatch.setattr(rig.store, "read", slow_read)
    info = await rig.put("orders/slow.csv", GOOD)
    rejected = await asyncio.wait_for(rig.reject(pipeline(), info), timeout=20)
    assert slept.is_set()
    assert rejected.stage == "extract"
    assert "took longer than 0 s, the time one unit may take" in rejected.reason
    assert "(INGEST_READ_SECONDS)" in rejected.reason


# ---- nested feeds, evolving schemas, real dates -------------------------------------------------


@pytest.mark.parametrize(("name", "fmt", "data"), event_files(40))
async def test_a_nested_feed_loads_with_its_values_intact(
    rig: Rig, name: str, fmt: Literal["ndjson", "parquet"], data: bytes
) -> None:
    p = pipeline(table=EVENTS, format=fmt, bad_rows=BadRowPolicy())
    result = await rig.run(p, await rig.put(name, data))
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (40, 40, 0)
    columns = 'id, "user", items, payload, took, CAST("at" AS VARCHAR)'
    rows = await rig.rows(EVENTS.name, columns=columns)
    for i in (0, 1, 2, 5, 39):
        sent = event(i)
        id_, user, items, payload, took, at = rows[i]
        assert (id_, user) == (i, sent["user"])
        assert items == [
            {"sku": it["sku"], "price": Decimal(str(it["price"])), "tags": it["tags"]}
            for it in sent["items"]
        ]
        # JSON keeps what was sent, whatever its shape (a string stays a JSON string).
        assert (None if payload is None else json.loads(payload)) == sent["payload"]
        assert str(took) == "00:00:01.250000"
        assert at == f"2026-11-20 08:{i % 60:02d}:00+00"


async def test_bad_nested_values_are_quarantined_with_the_path_of_the_field(rig: Rig) -> None:
    lines = [event(0), event(1), event(2)]
    lines[1]["items"] = [{"sku": "a", "price": 1}, {"sku": "b", "price": "cheap"}]
    lines[2]["user"] = {"id": "u2", "geo": {"country": "FR", "height": 3}}
    data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    p = pipeline(table=EVENTS, format="ndjson", bad_rows=BadRowPolicy(max_ratio=1.0))
    info = await rig.put("events/bad.json", data)
    result = await rig.run(p, info)
    assert (result.rows_loaded, result.rows_quarantined) == (1, 2)
    reasons = [(q["row"], q["reason"]) for q in rig.quarantine(p, info)]
    assert reasons == [
        (2, 'items[1].price: "cheap" is not a valid NUMERIC'),
        (3, "user.geo.height: unknown field"),
    ]


async def test_a_column_added_to_the_schema_between_two_files_loads_both(rig: Rig) -> None:
    await rig.run(pipeline(), await rig.put("orders/first.csv", GOOD))
    wider = TableSpec(TABLE, (*pipeline().table.columns, Column("channel", "STRING")), "day")
    second = csv_rows("4,d,4,2026-11-20,web", header="id,name,amount,day,channel")
    result = await rig.run(pipeline(table=wider), await rig.put("orders/second.csv", second))
    assert result.rows_loaded == 1
    assert await rig.rows(columns="id, channel") == [(1, None), (2, None), (3, None), (4, "web")]


async def test_a_replace_partition_pipeline_applies_a_schema_change_too(rig: Rig) -> None:
    await rig.run(replacing(), await rig.put("orders/2026-11-19.csv", csv_rows("1,a,1,2026-11-19")))
    first = csv_rows("2,b,2,2026-11-20", "3,c,3,2026-11-20")
    await rig.run(replacing(), await rig.put("orders/2026-11-20.csv", first))
    id_relaxed = (Column("id", "INTEGER"), *SCHEMA[1:])
    wider = TableSpec(TABLE, (*id_relaxed, Column("channel", "STRING")), "day")
    header = "id,name,amount,day,channel"
    second = csv_rows("4,d,4,2026-11-20,web", ",e,5,2026-11-20,", header=header)
    p = replacing(table=wider)
    result = await rig.run(p, await rig.put("orders/2026-11-20.csv", second))
    assert result.rows_loaded == 2
    assert await rig.rows(columns="id, channel") == [(1, None), (4, "web"), (None, None)]


async def test_a_csv_date_column_in_two_formats_loads_every_row(rig: Rig) -> None:
    cast = Transform("cast", "day", formats=("%Y-%m-%d", "%d/%m/%Y"))
    amount = Transform("cast", "amount", decimal_separator=",")
    p = pipeline(transforms=(cast, amount), csv=CsvOptions(delimiter=";"))
    data = csv_rows("1;a;12,50;2026-11-20", "2;b;3;20/11/2026", header="id;name;amount;day")
    result = await rig.run(p, await rig.put("orders/dates.csv", data))
    assert (result.rows_loaded, result.rows_quarantined) == (2, 0)
    assert await rig.rows(columns="id, amount, day") == [
        (1, Decimal("12.5"), date(2026, 11, 20)),
        (2, Decimal(3), date(2026, 11, 20)),
    ]


async def test_progress_counts_the_bytes_extracted_and_the_rows_validated(rig: Rig) -> None:
    data = csv_rows("1,a,1,2026-11-20", "x,b,2,2026-11-20", "3,c,3,2026-11-20")
    info = await rig.put("orders/counted.csv.gz", gzip.compress(data))
    ctx = rig.context(pipeline(), info)
    result = await rig.runner.run(ctx)
    # Inflated bytes (what was parsed), and every row read, the bad one included.
    assert (
        (ctx.progress.bytes, ctx.progress.rows) == (len(data), result.rows_read) == (len(data), 3)
    )


def counting_reads(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every read of an object from the rig's store, from now on."""
    reads: list[int] = []
    read = rig.store.read

    def counted(ref: ObjectRef, chunk_bytes: int) -> AsyncIterator[bytes]:
        reads.append(chunk_bytes)
        return read(ref, chunk_bytes)

    monkeypatch.setattr(rig.store, "read", counted)
    return reads


async def test_a_typo_late_in_a_file_has_the_object_read_again_and_loses_no_row(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The streamed pass stops at the typo; the object is read again, the records after
    those handed on are parsed block by block, and the bytes of both reads go back to the
    budget."""
    lines = [f"{i},n{i},{i}.5,2026-11-20" for i in range(1, 20_001)]
    lines[15_000] = "15001,typo,1,2026-13-45"
    info = await rig.put("orders/typo.csv", csv_rows(*lines))
    reads = counting_reads(rig, monkeypatch)
    result = await rig.run(pipeline(), info)
    assert len(reads) == 2
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (20_000, 19_999, 1)
    quarantined = rig.quarantine(pipeline(), info)
    assert [(q["row"], q["reason"].split(":")[0]) for q in quarantined] == [(15_001, "day")]
    ids = [r[0] for r in await rig.rows(columns="id")]
    assert ids == [i for i in range(1, 20_001) if i != 15_001]
    assert rig.runner.budget.used == 0


async def test_the_checksum_is_checked_on_the_second_read(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The typo is in the first block: the first read is given up long before its end (where
    the checksum is checked), and the second read finds the object torn."""
    from service.pipeline import feed

    monkeypatch.setattr(feed, "BLOCK_BYTES", 64 * 1024)
    lines = [f"{i},n{i},{i}.5,2026-11-20" for i in range(1, 40_001)]
    lines[10] = "11,typo,1,2026-13-45"
    info = await rig.put("orders/torn.csv", csv_rows(*lines))
    reads = counting_reads(rig, monkeypatch)
    rejected = await rig.reject(pipeline(), replace(info, crc32c_base64="AAAAAA=="))
    assert (rejected.stage, len(reads)) == ("extract", 2)
    assert "CRC32C" in rejected.reason
    assert not await rig.warehouse.tables()
