"""``ingest upload`` and ``ingest tables``: files into the store, row counts out."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.test_cli_common import Workspace, make_workspace, run_cli

ORDERS_CSV = EXAMPLES / "data" / "landing" / "orders" / "2026-11-20.csv"


@pytest.fixture
def space(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path)


def test_upload_then_sweep_then_tables(space: Workspace) -> None:
    upload = run_cli(["upload", str(ORDERS_CSV), "gs://landing/orders/a[1].csv"], space.env())
    assert upload.exit_code == 0
    assert upload.output.strip() == "gs://landing/orders/a[1].csv generation 1"
    same = run_cli(["upload", str(ORDERS_CSV), "gs://landing/orders/a[1].csv"], space.env())
    assert same.output.strip().endswith("generation 2")  # every upload is a new generation
    assert run_cli(["sweep", "orders"], space.env()).exit_code == 0
    tables = run_cli(["tables"], space.env())
    assert tables.exit_code == 0
    [row] = [line for line in tables.output.splitlines() if "sales.orders" in line]
    assert row.split("│")[2].strip() == "5"


@pytest.mark.parametrize("destination", ["landing/a.csv", "gs://landing", "gs:///a.csv"])
def test_upload_needs_a_gs_uri(space: Workspace, destination: str) -> None:
    result = run_cli(["upload", str(ORDERS_CSV), destination], space.env())
    assert result.exit_code == 2
    assert "DESTINATION must be gs://BUCKET/NAME" in result.output


def test_upload_of_a_missing_file(space: Workspace) -> None:
    result = run_cli(["upload", str(space.root / "nope.csv"), "gs://landing/a.csv"], space.env())
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_upload_keeps_a_dotted_name_inside_its_bucket(space: Workspace) -> None:
    result = run_cli(["upload", str(ORDERS_CSV), "gs://landing/../x.csv"], space.env())
    assert result.exit_code == 0  # "../x.csv" is an object name like any other on GCS
    assert result.output.strip() == "gs://landing/../x.csv generation 1"
    buckets = space.data_dir / "buckets"
    stored = [p for p in buckets.rglob("*") if p.is_file() and ".meta" not in p.parts]
    assert [p.relative_to(buckets).as_posix() for p in stored] == ["landing/%2E./x.csv"]
