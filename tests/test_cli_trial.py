"""``ingest try FILE --pipeline NAME``: the verdict on a local file, and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.test_cli_common import Workspace, error_line, make_workspace, run_cli

ORDERS_21 = EXAMPLES / "data" / "landing" / "orders" / "2026-11-21.csv"
HEADER = "order_id,cust,order_date,amount,paid,created_at\n"


@pytest.fixture
def space(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path)


def test_a_sample_file_gives_counts_reasons_and_first_rows(space: Workspace) -> None:
    result = run_cli(["try", str(ORDERS_21), "--pipeline", "orders", "--json"], space.env())
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert (found["verdict"], found["rows_read"], found["rows_loaded"]) == ("loaded", 8, 6)
    assert found["rows_quarantined"] == 2
    assert {r["reason"] for r in found["bad_rows"]} == {
        "amount: … is not a valid NUMERIC",
        "customer_id: required value is missing",
    }
    assert [r["order_id"] for r in found["first_rows"]] == [2001, 2003, 2004, 2006, 2007]
    assert found["unit"] == "orders:gs://landing/orders/2026-11-21.csv#1"
    # Nothing was written: no data folder (no table, no ledger, no quarantine) came to be.
    assert not space.data_dir.exists()


def test_a_file_that_would_be_rejected_exits_1_with_the_reason(
    space: Workspace, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "1,C1,2026-11-20,x,true,\n2,C1,2026-11-20,y,true,\n")
    result = run_cli(["try", str(bad), "--pipeline", "orders"], space.env())
    assert result.exit_code == 1
    assert "would be REJECTED: validate: 2 of 2 rows bad, threshold 25%" in result.stdout
    assert "reject 0" in result.stdout and "quarantine 2" in result.stdout
    assert error_line(result) == "Error: the file would be rejected"
    assert not space.data_dir.exists()


def test_an_unknown_pipeline_is_one_line(space: Workspace) -> None:
    result = run_cli(["try", str(ORDERS_21), "--pipeline", "nope"], space.env())
    assert result.exit_code == 1
    assert error_line(result) == "Error: unknown pipeline 'nope' (known: orders, customers)"
