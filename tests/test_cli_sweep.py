"""``ingest sweep``: a pipeline's source swept now, in-process, with the ledger's exactly-once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.models import UnitState
from tests.test_cli_common import Workspace, error_line, make_workspace, run_cli


@pytest.fixture
def space(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path)


def test_sweep_loads_every_object_once(space: Workspace) -> None:
    space.seed()
    first = run_cli(["sweep", "orders", "--json"], space.env())
    assert first.exit_code == 0, first.output
    body = json.loads(first.stdout)
    assert (body["units"], body["rows_loaded"], body["rows_quarantined"]) == ({"loaded": 2}, 11, 2)
    assert body["where"] == "gs://landing/orders/"
    assert sorted(u["unit"] for u in body["units_detail"]) == [
        "orders:gs://landing/orders/2026-11-20.csv#1",
        "orders:gs://landing/orders/2026-11-21.csv#1",
    ]
    again = run_cli(["sweep", "orders"], space.env())
    assert again.exit_code == 0
    # A sweep publishes only units the ledger has not finished.
    assert "2 objects listed, every unit finished already" in again.output
    assert len(space.records(UnitState.COMPLETED)) == 2


def test_sweep_force_re_runs(space: Workspace) -> None:
    space.seed()
    assert run_cli(["sweep", "customers"], space.env()).exit_code == 0
    result = run_cli(["sweep", "customers", "--force", "--json"], space.env())
    assert json.loads(result.stdout)["units"] == {"loaded": 1}
    [record] = space.records()
    assert record.attempt == 2


def test_dry_run_lists_objects_and_their_ledger_state(space: Workspace) -> None:
    space.seed()
    assert run_cli(["sweep", "customers"], space.env()).exit_code == 0
    result = run_cli(["sweep", "orders", "--dry-run"], space.env())
    assert result.exit_code == 0
    assert "orders:gs://landing/orders/2026-11-20.csv#1" in result.output
    assert "2 objects, 2 not yet in the ledger" in result.output
    assert len(space.records()) == 1  # only the customers unit: the dry run ran nothing


def test_a_date_narrows_a_dated_prefix(space: Workspace) -> None:
    text = space.pipelines.read_text().replace('prefix = "orders/"', 'prefix = "daily/{date}/"')
    text = text.replace('glob = "*.csv*"', 'glob = "*.csv"')
    space.pipelines.write_text(text)
    store = space.seed()
    orders = Path(__file__).resolve().parent.parent / "examples/data/landing/orders"
    for day in ("2026-11-20", "2026-11-21"):
        store.put("landing", f"daily/{day}/orders.csv", (orders / f"{day}.csv").read_bytes())
    result = run_cli(["sweep", "orders", "--date", "2026-11-21", "--json"], space.env())
    body = json.loads(result.stdout)
    assert body["where"] == "gs://landing/daily/2026-11-21/"
    assert [u["unit"] for u in body["units_detail"]] == [
        "orders:gs://landing/daily/2026-11-21/orders.csv#1"
    ]


def test_nothing_to_sweep(space: Workspace) -> None:
    space.data_dir.mkdir()
    result = run_cli(["sweep", "orders"], space.env())
    assert result.exit_code == 0
    assert "nothing to sweep under gs://landing/orders/" in result.output


def test_a_failed_unit_makes_the_exit_code_non_zero(space: Workspace) -> None:
    store = space.seed()
    store.put("landing", "customers/more.csv", b"customer_id,name,country,signed_up\n,x,FR,\n")
    result = run_cli(["sweep", "customers"], space.env())
    assert result.exit_code == 1
    assert "failed" in result.stdout
    assert error_line(result) == "Error: 1 of 2 units did not succeed"


def test_an_unknown_pipeline_is_one_line(space: Workspace) -> None:
    result = run_cli(["sweep", "ordrs"], space.env())
    assert result.exit_code == 1
    assert error_line(result) == "Error: unknown pipeline 'ordrs' (known: orders, customers)"


def test_a_missing_pipelines_file_is_one_line(space: Workspace) -> None:
    space.pipelines.unlink()
    result = run_cli(["sweep", "orders"], space.env())
    assert result.exit_code == 1
    assert "pipelines file not found" in error_line(result)


def test_a_prefix_narrows_the_sweep(space: Workspace) -> None:
    space.seed()
    result = run_cli(["sweep", "orders", "--prefix", "orders/2026-11-21", "--json"], space.env())
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["where"] == "gs://landing/orders/2026-11-21"
    assert [u["unit"] for u in body["units_detail"]] == [
        "orders:gs://landing/orders/2026-11-21.csv#1"
    ]
    dry = run_cli(["sweep", "orders", "--prefix", "orders/", "--dry-run"], space.env())
    assert "2 objects, 1 not yet in the ledger" in dry.output


def test_a_prefix_outside_the_pipeline_is_refused(space: Workspace) -> None:
    space.seed()
    result = run_cli(["sweep", "orders", "--prefix", "customers/"], space.env())
    assert result.exit_code == 2
    assert "'customers/' is outside pipeline orders's prefix 'orders/'" in result.output
    assert space.records() == []


def test_a_backfill_of_dates_sweeps_each_date_once(space: Workspace) -> None:
    space.seed()
    result = run_cli(
        ["backfill", "orders", "--from", "2026-11-20", "--to", "2026-11-21", "--json"],
        space.env(),
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    # The orders prefix holds no {date}: each date lists both files; published twice, each
    # file is loaded once and answered duplicate the second time.
    assert (body["units"]["loaded"], body["sweep"]["objects"]) == (2, 4)
    again = run_cli(["backfill", "orders", "--prefix", "orders/"], space.env())
    assert again.exit_code == 0 and "every unit finished already" in again.output
    assert len(space.records(UnitState.COMPLETED)) == 2


def test_a_backfill_needs_dates_or_a_prefix(space: Workspace) -> None:
    space.seed()
    for args in (["--from", "2026-11-20"], ["--prefix", "o/", "--to", "2026-11-20"]):
        result = run_cli(["backfill", "orders", *args], space.env())
        assert result.exit_code == 2, result.output
