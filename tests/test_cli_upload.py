"""``ingest upload`` and ``ingest tables``: files into the store, row counts out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.adapters.local.directory_store import DirectoryObjectStore
from service.cli.common import run_async
from service.models import ObjectRef
from tests.conftest import EXAMPLES
from tests.test_cli_common import Workspace, error_line, make_workspace, run_cli

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


def test_tables_as_json(space: Workspace) -> None:
    space.seed()
    assert run_cli(["sweep", "orders"], space.env()).exit_code == 0
    result = run_cli(["tables", "--json"], space.env())
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [{"table": "sales.orders", "rows": 11}]


def test_upload_of_folders_and_files_in_one_go(space: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    for name in ("a.csv", "deeper/b.csv", "deeper/even/c.csv"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(name)
    loose = tmp_path / "loose.json"
    loose.write_text("{}")
    result = run_cli(
        ["upload", str(folder), str(loose), "gs://landing/in", "-c", "2", "--json"], space.env()
    )
    assert result.exit_code == 0, result.output
    assert [(u["uri"], u["generation"], u["error"]) for u in json.loads(result.stdout)] == [
        ("gs://landing/in/exports/a.csv", 1, None),
        ("gs://landing/in/exports/deeper/b.csv", 1, None),
        ("gs://landing/in/exports/deeper/even/c.csv", 1, None),
        ("gs://landing/in/loose.json", 1, None),
    ]
    stored = DirectoryObjectStore(space.data_dir / "buckets")
    b = run_async(lambda: stored.stat(ObjectRef("landing", "in/exports/deeper/b.csv")))
    assert (b.size, b.content_type) == (len("deeper/b.csv"), "text/csv")


def test_upload_of_one_file_into_a_folder(space: Workspace) -> None:
    result = run_cli(["upload", str(ORDERS_CSV), "gs://landing/orders/"], space.env())
    assert result.output.strip() == "gs://landing/orders/2026-11-20.csv generation 1"


def test_upload_of_many_files_is_one_process(space: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(300):
        (folder / f"{i:03d}.csv").write_text(f"order_id\n{i}\n")
    result = run_cli(["upload", str(folder), "gs://landing/orders/", "--json"], space.env())
    assert result.exit_code == 0
    done = json.loads(result.stdout)
    assert len(done) == 300
    assert {u["generation"] for u in done} == {1}


def test_upload_reports_each_failure_and_goes_on(space: Workspace, tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    DirectoryObjectStore(space.data_dir / "buckets").put("landing", "in/a/x", b"x")
    result = run_cli(
        ["upload", str(tmp_path / "a"), str(tmp_path / "b"), "gs://landing/in/"], space.env()
    )
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        "gs://landing/in/a FAILED: gs://landing/in/a cannot be stored beside"
    )
    assert lines[1] == "gs://landing/in/b generation 1"
    assert error_line(result) == "Error: 1 of 2 files were not uploaded"


def test_upload_refuses_two_files_with_one_name(space: Workspace, tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "orders.csv").write_text("a")
    result = run_cli(
        [
            "upload",
            str(tmp_path / "x" / "orders.csv"),
            str(ORDERS_CSV.parent / "2026-11-20.csv"),
            str(tmp_path / "x" / "orders.csv"),
            "gs://landing/",
        ],
        space.env(),
    )
    assert result.exit_code == 2
    assert "would both be gs://landing/orders.csv" in result.output
