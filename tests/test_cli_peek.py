"""``ingest peek``: rows of a DuckDB table, filtered by parameters, never by SQL text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli_common import Workspace, error_line, make_workspace, run_cli


@pytest.fixture
def space(tmp_path: Path) -> Workspace:
    found = make_workspace(tmp_path)
    found.seed()
    assert run_cli(["sweep", "orders"], found.env()).exit_code == 0
    return found


def peeked(space: Workspace, *args: str) -> list[dict[str, object]]:
    result = run_cli(["peek", "sales.orders", "--json", *args], space.env())
    assert result.exit_code == 0, result.output
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


def test_peek_shows_rows_up_to_the_limit(space: Workspace) -> None:
    assert len(peeked(space)) == 11
    rows = peeked(space, "--limit", "3")
    assert len(rows) == 3
    assert {"order_id", "customer_id", "amount", "_source_uri"} <= set(rows[0])
    shown = run_cli(["peek", "sales.orders", "--limit", "2"], space.env())
    assert shown.exit_code == 0 and "sales.orders: 2 rows" in shown.stdout


def test_filters_compare_in_the_columns_type_and_combine(space: Workspace) -> None:
    big = peeked(space, "--where", "amount>50")
    assert big and all(float(str(r["amount"])) > 50 for r in big)
    both = peeked(space, "--where", "amount>50", "--where", "customer_id = C001")
    assert both and all(r["customer_id"] == "C001" for r in both)
    assert len(both) < len(big)
    by_day = peeked(space, "--where", "order_date=2026-11-20")
    assert len(by_day) == 5


def test_sql_in_a_filter_is_only_ever_a_value(space: Workspace) -> None:
    assert peeked(space, "--where", "customer_id=C001' OR '1'='1") == []
    refused = run_cli(["peek", "sales.orders", "--where", "1=1 OR amount>0"], space.env())
    assert refused.exit_code == 1
    assert error_line(refused).startswith("Error: PermanentError: table sales.orders has no column")
    dropped = run_cli(["peek", 'sales.orders"; DROP TABLE sales.orders; --'], space.env())
    assert dropped.exit_code == 1 and "NotFoundError: no table" in error_line(dropped)
    assert len(peeked(space)) == 11  # the table is still there, whole


def test_bad_input_is_one_line(space: Workspace) -> None:
    wrong = run_cli(["peek", "sales.orders", "--where", "amount>lots"], space.env())
    assert wrong.exit_code == 1
    assert error_line(wrong) == (
        'Error: PermanentError: Conversion Error: Could not convert string "lots" to DECIMAL(38,9)'
    )
    internal = run_cli(["peek", "_ingest.load_jobs"], space.env())
    assert internal.exit_code == 1 and "no table _ingest.load_jobs" in error_line(internal)
    unparsed = run_cli(["peek", "sales.orders", "--where", "amount~1"], space.env())
    assert unparsed.exit_code == 2 and "is not COLUMN OP VALUE" in unparsed.output
