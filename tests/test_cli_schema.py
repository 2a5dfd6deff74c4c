"""``ingest schema infer FILE``: the schema on stdout (or a file), notes on stderr."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import EXAMPLES
from tests.test_cli_common import error_line, run_cli

SAMPLE = EXAMPLES / "data" / "landing" / "orders" / "2026-11-21.csv"


def test_the_schema_is_json_on_stdout() -> None:
    result = run_cli(["schema", "infer", str(SAMPLE)], {})
    assert result.exit_code == 0, result.output
    fields = json.loads(result.stdout)
    assert [f["name"] for f in fields][:3] == ["order_id", "cust", "order_date"]
    assert "6 columns from 8 sample rows, all NULLABLE" in result.stderr


def test_output_writes_a_file_and_nested_fields_are_flagged(tmp_path: Path) -> None:
    sample = tmp_path / "s.jsonl"
    sample.write_text('{"a": {"b": 1}}\n')
    target = tmp_path / "schema.json"
    result = run_cli(["schema", "infer", str(sample), "-o", str(target)], {})
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text())[0]["type"] == "RECORD"
    assert "nested fields (a): pipelines cannot load them yet" in result.stderr


def test_an_unknown_format_is_one_line(tmp_path: Path) -> None:
    sample = tmp_path / "s.txt"
    sample.write_text("a\n")
    result = run_cli(["schema", "infer", str(sample)], {})
    assert result.exit_code == 1
    assert error_line(result) == "Error: s.txt: say --format csv, ndjson or parquet"
    assert run_cli(["schema", "infer", str(sample), "--format", "csv"], {}).exit_code == 0
