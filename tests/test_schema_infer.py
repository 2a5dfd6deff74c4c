"""service/schema_infer.py: a BigQuery JSON schema from CSV, NDJSON and Parquet samples."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.errors import PermanentError
from service.models import Column
from service.pipeline.pipelines_file import load_pipelines
from service.schema_infer import file_format, infer
from tests.conftest import EXAMPLES


def types(fields: list[dict[str, object]]) -> dict[str, tuple[object, object]]:
    return {str(f["name"]): (f["type"], f["mode"]) for f in fields}


def test_csv_types_come_from_the_values(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text(
        "id,name,amount,ok,day,at,local\n"
        "1,a,1.5,true,2026-11-20,2026-11-20T08:00:00Z,2026-11-20 08:00:00\n"
        "2,,2,false,2026-11-21,2026-11-21T08:00:00+01:00,2026-11-21 09:00:00\n"
    )
    found = infer(path, "csv")
    assert types(found.fields) == {
        "id": ("INTEGER", "NULLABLE"),
        "name": ("STRING", "NULLABLE"),
        "amount": ("FLOAT", "NULLABLE"),
        "ok": ("BOOLEAN", "NULLABLE"),
        "day": ("DATE", "NULLABLE"),
        "at": ("TIMESTAMP", "NULLABLE"),
        "local": ("DATETIME", "NULLABLE"),
    }
    assert (found.rows, found.nested, found.bad_names) == (2, (), ())


def test_ndjson_nested_values_become_records_and_repeated_fields(tmp_path: Path) -> None:
    path = tmp_path / "s.ndjson.gz"
    path.write_bytes(
        gzip.compress(b'{"a": 1, "b": {"c": "x"}, "l": [1, 2], "t": "2026-01-01T00:00:00Z"}\n')
    )
    found = infer(path, file_format(path, None))
    assert found.fields[1] == {
        "name": "b",
        "type": "RECORD",
        "mode": "NULLABLE",
        "fields": [{"name": "c", "type": "STRING", "mode": "NULLABLE"}],
    }
    assert types(found.fields)["l"] == ("INTEGER", "REPEATED")
    assert types(found.fields)["t"] == ("TIMESTAMP", "NULLABLE")
    assert found.nested == ("b", "l")


def test_parquet_gives_its_own_schema_and_names_bigquery_refuses(tmp_path: Path) -> None:
    path = tmp_path / "s.parquet"
    table = pa.table(
        {
            "n": pa.array([1], pa.int32()),
            "price": pa.array([1], pa.decimal128(10, 2)),
            "blob": pa.array([b"x"]),
            "order id": ["a"],
        }
    )
    pq.write_table(table, path)
    found = infer(path, file_format(path, None))
    assert [f["type"] for f in found.fields] == ["INTEGER", "NUMERIC", "BYTES", "STRING"]
    assert (found.rows, found.bad_names) == (None, ("order id",))


def test_a_sample_stops_at_a_whole_line(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("id\n" + "1\n" * 2000 + "x" * 5000 + "\n")
    assert types(infer(path, "csv", sample_bytes=1024).fields) == {"id": ("INTEGER", "NULLABLE")}
    assert types(infer(path, "csv").fields) == {"id": ("STRING", "NULLABLE")}


def test_the_inferred_schema_of_the_sample_is_one_a_pipeline_reads(tmp_path: Path) -> None:
    import json

    sample = EXAMPLES / "data" / "landing" / "orders" / "2026-11-20.csv"
    (tmp_path / "schema.json").write_text(json.dumps(infer(sample, "csv").fields))
    (tmp_path / "pipelines.toml").write_text(
        '[[pipelines]]\nname = "p"\nbucket = "bkt"\ntable = "d.t"\nschema = "schema.json"\n'
    )
    [p] = load_pipelines(tmp_path / "pipelines.toml").pipelines
    assert p.table.columns[0] == Column("order_id", "INTEGER")


def test_unknown_formats_and_unreadable_files_are_one_error(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="say --format"):
        file_format(tmp_path / "x.txt", None)
    broken = tmp_path / "x.parquet"
    broken.write_bytes(b"not parquet")
    with pytest.raises(PermanentError, match="not readable as parquet"):
        infer(broken, "parquet")
