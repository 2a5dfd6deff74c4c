"""uri_load: when the warehouse may read a gs:// URI itself."""

from __future__ import annotations

from pathlib import Path

from service.adapters.local.duckdb_warehouse import DuckDbWarehouse
from service.models import LoadResult, ObjectInfo, ObjectRef, UriSource
from service.pipeline.definition import BadRowPolicy, CsvOptions, Transform
from service.pipeline.uri_load import staging_ref, uri_source
from service.ports import UriLoad
from tests.pipeline_support import Rig, pipeline


class UriWarehouse(DuckDbWarehouse):
    async def load_uri(self, load: UriLoad) -> LoadResult:
        raise AssertionError("not called here")


def test_the_fast_path_is_for_untransformed_native_uncompressed_files(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    fast = UriWarehouse(tmp_path / "u.duckdb")
    info = ObjectInfo(ObjectRef("landing", "in/x.csv", 3), 1)
    plain = pipeline()
    source = uri_source(rig.context(plain, info), fast)
    assert source == UriSource("gs://landing/in/x.csv", "CSV", skip_leading_rows=1)
    assert uri_source(rig.context(plain, info), rig.warehouse) is None  # DuckDB cannot
    refused = [
        pipeline(lineage=True),
        pipeline(transforms=(Transform("drop", "x"),)),
        pipeline(compression="gzip"),
        pipeline(csv=CsvOptions(encoding="utf-16")),
        pipeline(csv=CsvOptions(null_values=("NA", "NULL"))),
        pipeline(write_mode="replace_partition", partition_date="column"),
    ]
    for p in refused:
        assert uri_source(rig.context(p, info), fast) is None, p
    gz = ObjectInfo(ObjectRef("landing", "in/x.csv.gz", 3), 1)
    assert uri_source(rig.context(plain, gz), fast) is None
    json_source = uri_source(rig.context(pipeline(format="ndjson"), info), fast)
    assert json_source is not None and json_source.format == "NEWLINE_DELIMITED_JSON"


def test_the_fast_path_stages_its_copy_under_the_quarantine_prefix(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    info = ObjectInfo(ObjectRef("landing", "in/x.csv", 3), 1)
    ref = staging_ref(rig.context(pipeline(), info))
    assert ref == ObjectRef("landing", "_quarantine/_staging/orders/3/in/x.csv")
    elsewhere = pipeline(bad_rows=BadRowPolicy(quarantine="gs://q/bad"))
    assert staging_ref(rig.context(elsewhere, info)).name == "bad/_staging/orders/3/in/x.csv"
