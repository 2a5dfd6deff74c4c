"""``ingest ledger list|show|retry``: the units the service recorded, and re-running failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.models import UnitState
from tests.test_cli_common import Workspace, error_line, make_workspace, run_cli

BAD_CUSTOMERS = b"customer_id,name,country,signed_up\nC9,ok,FR,2024-01-01\n,no id,FR,\n"
BAD_UNIT = "customers:gs://landing/customers/more.csv#1"


@pytest.fixture
def space(tmp_path: Path) -> Workspace:
    return swept_with_a_failure(tmp_path)


def swept_with_a_failure(tmp_path: Path) -> Workspace:
    """The examples swept, and one customers file that failed (customers allow no bad row)."""
    found = make_workspace(tmp_path)
    found.seed().put("landing", "customers/more.csv", BAD_CUSTOMERS, "text/csv")
    assert run_cli(["sweep", "orders"], found.env()).exit_code == 0
    assert run_cli(["sweep", "customers"], found.env()).exit_code == 1
    return found


def listed(space: Workspace, *args: str) -> list[dict[str, object]]:
    result = run_cli(["ledger", "list", "--json", *args], space.env())
    assert result.exit_code == 0, result.output
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


def test_list_shows_every_unit_newest_first(space: Workspace) -> None:
    rows = listed(space)
    assert len(rows) == 4
    stamps = [str(r["updated_at"]) for r in rows]
    assert stamps == sorted(stamps, reverse=True)
    failed = next(r for r in rows if r["state"] == "FAILED")
    # A rejected file: the quarantine holds its one bad row (reading stopped there).
    assert (failed["unit"], failed["rows_loaded"], failed["rows_quarantined"]) == (BAD_UNIT, 0, 1)
    assert "rows bad, none allowed" in str(failed["error"])


def test_list_filters(space: Workspace) -> None:
    assert [r["unit"] for r in listed(space, "--state", "failed")] == [BAD_UNIT]
    assert {r["pipeline"] for r in listed(space, "--pipeline", "orders")} == {"orders"}
    assert len(listed(space, "--limit", "2")) == 2
    assert len(listed(space, "--since", "1h")) == 4
    assert listed(space, "--since", "2999-01-01T00:00:00Z") == []


def test_list_table(space: Workspace) -> None:
    result = run_cli(["ledger", "list"], space.env())
    assert result.exit_code == 0
    assert "FAILED" in result.output and "COMPLETED" in result.output
    assert "4 units" in result.output


def test_list_refuses_a_bad_since(space: Workspace) -> None:
    result = run_cli(["ledger", "list", "--since", "last week"], space.env())
    assert result.exit_code == 2
    assert "neither an ISO 8601 time nor an age" in result.output


@pytest.mark.parametrize("how", ["key", "prefix", "unit"])
def test_show_finds_a_unit_by_key_prefix_or_unit(space: Workspace, how: str) -> None:
    [record] = space.records(UnitState.FAILED)
    key = {"key": record.key, "prefix": record.key[:8], "unit": record.unit}[how]
    result = run_cli(["ledger", "show", key, "--json"], space.env())
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert (shown["key"], shown["state"], shown["unit"]) == (record.key, "FAILED", BAD_UNIT)
    assert shown["fingerprint"].startswith("md5:")


def test_show_as_a_table(space: Workspace) -> None:
    result = run_cli(["ledger", "show", BAD_UNIT], space.env())
    assert result.exit_code == 0
    assert "quarantine_uri" in result.output and "FAILED" in result.output


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("nonsense!", "is neither a ledger key (hex) nor a unit"),
        ("0" * 40, f"no unit {'0' * 40} in the ledger"),
        ("abcdef", "no unit with a key starting abcdef"),
        ("orders:gs://landing/orders/nope.csv#1", "no unit orders:gs://landing/orders/nope.csv#1"),
    ],
)
def test_show_unknown_keys_are_one_line(space: Workspace, key: str, message: str) -> None:
    result = run_cli(["ledger", "show", key], space.env())
    assert result.exit_code == 1
    assert message in error_line(result)


def test_retry_re_runs_a_failed_unit_once_the_cause_is_fixed(space: Workspace) -> None:
    # The fix: this pipeline now accepts up to half of a file's rows bad.
    text = space.pipelines.read_text().replace("max_count = 0", "max_ratio = 0.5")
    space.pipelines.write_text(text)
    result = run_cli(["ledger", "retry", BAD_UNIT], space.env())
    assert result.exit_code == 0, result.output
    assert "loaded" in result.output
    [record] = [r for r in space.records() if r.unit == BAD_UNIT]
    assert (record.state, record.attempt) == (UnitState.COMPLETED, 2)
    assert record.result is not None
    assert (record.result.rows_loaded, record.result.rows_quarantined) == (1, 1)


def test_retry_that_fails_again_exits_non_zero(space: Workspace) -> None:
    [record] = space.records(UnitState.FAILED)
    result = run_cli(["ledger", "retry", record.key[:10]], space.env())
    assert result.exit_code == 1
    assert error_line(result) == "Error: 1 of 1 units did not load"
    [again] = space.records(UnitState.FAILED)
    assert again.attempt == 2


def test_retry_all_failed(space: Workspace) -> None:
    text = space.pipelines.read_text().replace("max_count = 0", "max_ratio = 0.5")
    space.pipelines.write_text(text)
    result = run_cli(["ledger", "retry", "--all-failed", "--pipeline", "customers"], space.env())
    assert result.exit_code == 0, result.output
    assert space.records(UnitState.FAILED) == []
    nothing = run_cli(["ledger", "retry", "--all-failed"], space.env())
    assert (nothing.exit_code, nothing.output.strip()) == (0, "no FAILED units to retry")


def test_retry_refuses_a_completed_unit(space: Workspace) -> None:
    unit = "orders:gs://landing/orders/2026-11-20.csv#1"
    result = run_cli(["ledger", "retry", unit], space.env())
    assert result.exit_code == 1
    assert error_line(result) == (
        f"Error: {unit} is COMPLETED; only FAILED units are retried"
        " (replay its event with --force to re-run it)"
    )
    [record] = [r for r in space.records() if r.unit == unit]
    assert record.attempt == 1


def test_retry_when_the_generation_is_gone(space: Workspace) -> None:
    space.seed().put("landing", "customers/more.csv", b"customer_id,name,country,signed_up\n")
    result = run_cli(["ledger", "retry", BAD_UNIT], space.env())
    assert result.exit_code == 1
    assert "cannot re-run:" in result.stdout  # the reason, in the table
    assert error_line(result) == "Error: 1 of 1 units did not load"


def test_retry_usage(space: Workspace) -> None:
    assert run_cli(["ledger", "retry"], space.env()).exit_code == 2
    both = run_cli(["ledger", "retry", BAD_UNIT, "--all-failed"], space.env())
    assert both.exit_code == 2
    assert "give KEY... or --all-failed" in both.output


def test_retry_as_json(space: Workspace) -> None:
    text = space.pipelines.read_text().replace("max_count = 0", "max_ratio = 0.5")
    space.pipelines.write_text(text)
    result = run_cli(["ledger", "retry", BAD_UNIT, "--json"], space.env())
    assert result.exit_code == 0, result.output
    [retried] = json.loads(result.stdout)
    assert retried["unit"] == BAD_UNIT
    assert (retried["status"], retried["rows_loaded"], retried["rows_quarantined"]) == (
        "loaded",
        1,
        1,
    )
    nothing = run_cli(["ledger", "retry", "--all-failed", "--json"], space.env())
    assert (nothing.exit_code, json.loads(nothing.stdout)) == (0, [])
