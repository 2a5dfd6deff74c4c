"""``ingest quarantine KEY``: bad rows by reason, and the reason a file was rejected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli_common import Workspace, error_line, run_cli
from tests.test_cli_ledger import BAD_UNIT, swept_with_a_failure

REJECTED = BAD_UNIT
LOADED = "orders:gs://landing/orders/2026-11-21.csv#1"


@pytest.fixture
def space(tmp_path: Path) -> Workspace:
    return swept_with_a_failure(tmp_path)


def report(space: Workspace, key: str) -> dict[str, object]:
    result = run_cli(["quarantine", key, "--json"], space.env())
    assert result.exit_code == 0, result.output
    found: dict[str, object] = json.loads(result.stdout)
    return found


def test_a_loaded_unit_shows_its_bad_rows_by_reason(space: Workspace) -> None:
    found = report(space, LOADED)
    assert found["bad_rows"] == 2 and found["file_reason"] is None
    reasons = {r["reason"]: r["rows"] for r in found["reasons"]}  # type: ignore[attr-defined]
    assert reasons == {
        "amount: … is not a valid NUMERIC": 1,
        "customer_id: required value is missing": 1,
    }
    shown = run_cli(["quarantine", LOADED], space.env())
    assert "2 bad rows by reason" in shown.stdout and "not-a-number" in shown.stdout


def test_a_rejected_unit_gives_the_file_reason_and_the_counts_agree(space: Workspace) -> None:
    found = report(space, REJECTED)
    assert str(found["file_reason"]).startswith("1 of 2 rows bad, none allowed")
    ledger = json.loads(run_cli(["ledger", "show", REJECTED, "--json"], space.env()).stdout)
    assert (ledger["rows_quarantined"], ledger["rows_rejected"]) == (found["bad_rows"], 1) == (1, 1)
    by_uri = report(space, str(found["uri"]))
    assert by_uri["bad_rows"] == 1
    shown = run_cli(["quarantine", REJECTED], space.env())
    assert "file rejected: 1 of 2 rows bad" in shown.stdout


def test_a_unit_without_bad_rows_says_so(space: Workspace) -> None:
    shown = run_cli(["quarantine", "orders:gs://landing/orders/2026-11-20.csv#1"], space.env())
    assert shown.exit_code == 0
    assert "no quarantine for orders:gs://landing/orders/2026-11-20.csv#1 (no bad row)" in (
        shown.stdout
    )
    missing = run_cli(["quarantine", "orders:gs://landing/orders/none.csv#1"], space.env())
    assert missing.exit_code == 1 and "no unit" in error_line(missing)
