"""service/trial.py: a local file through the real stages, with the counts a unit would record."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.adapters.local.dry import DryWarehouse, OneFileStore
from service.errors import StageError
from service.models import ObjectRef
from service.pipeline.definition import BadRowPolicy
from service.trial import object_name, try_file
from service.wiring import trial_ports
from tests.pipeline_support import csv_rows, pipeline


def ports(
    path: Path, name: str = "orders/a.csv", rows: int = 2
) -> tuple[OneFileStore, DryWarehouse]:
    return trial_ports(path, ObjectRef("landing", name, 1), rows)


async def test_a_good_file_would_load_with_its_first_rows(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(csv_rows("1,a,1.5,2026-11-20", "2,b,2,2026-11-20", "x,c,3,2026-11-20"))
    store, warehouse = ports(path)
    trial = await try_file(pipeline(), store, warehouse)
    assert trial.rejected is None
    r = trial.result
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined, r.rows_rejected) == (3, 2, 1, 0)
    assert trial.first_rows.columns[:2] == ("id", "name")
    assert [row[:2] for row in trial.first_rows.rows] == [(1, "a"), (2, "b")]
    assert trial.bad_rows is not None
    assert [(g.kind, g.count) for g in trial.bad_rows.groups] == [
        ("id: … is not a valid INTEGER", 1)
    ]
    assert trial.unit == "orders:gs://landing/orders/a.csv#1"


async def test_a_file_over_the_threshold_would_be_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(csv_rows("x,a,1,2026-11-20", "2,b,2,2026-11-20"))
    strict = pipeline(bad_rows=BadRowPolicy(max_ratio=0.1))
    trial = await try_file(strict, *ports(path))
    assert trial.rejected == (
        "validate: 1 of 2 rows bad, threshold 10%; most frequent: id: … is not a valid INTEGER (1)"
    )
    r = trial.result
    assert (r.rows_loaded, r.rows_quarantined, r.rows_rejected) == (0, 1, 1)
    assert trial.bad_rows is not None and trial.bad_rows.file_reason is not None


async def test_a_file_that_cannot_be_read_is_rejected_without_counts(tmp_path: Path) -> None:
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00broken")
    trial = await try_file(pipeline(), *ports(path, "orders/cut.csv.gz"))
    assert trial.rejected is not None and trial.rejected.startswith("extract:")
    assert trial.result.rows_read == 0 and trial.bad_rows is None


def test_the_object_name_defaults_to_the_file_under_the_prefix(tmp_path: Path) -> None:
    dated = pipeline(prefix="in/{date}/", glob="*.csv")
    assert object_name(pipeline(prefix="orders/"), tmp_path / "x.csv", None) == "orders/x.csv"
    assert object_name(dated, tmp_path / "x.csv", None) == "in/x.csv"
    assert object_name(dated, tmp_path / "x.csv", "in/2026-11-20/x.csv") == "in/2026-11-20/x.csv"


async def test_a_transient_failure_is_raised_not_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(csv_rows("1,a,1,2026-11-20"))
    store, warehouse = ports(path)

    async def broken(*args: object, **kwargs: object) -> object:
        raise OSError("disk gone")

    monkeypatch.setattr(warehouse, "load_parquet", broken)
    with pytest.raises(StageError, match="stage load failed"):
        await try_file(pipeline(), store, warehouse)
