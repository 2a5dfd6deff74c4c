"""spool: validated batches to a temporary Parquet file that cleans up after itself."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from service.pipeline.spool import ParquetSpool
from service.pipeline.transform import output_schema
from tests.pipeline_support import pipeline


async def test_the_spool_writes_lineage_text_as_dictionaries(tmp_path: Path) -> None:
    schema = output_schema(pipeline(lineage=True))
    assert pa.types.is_dictionary(schema.field("_source_uri").type)
    async with ParquetSpool(schema, tmp_path) as spool:
        path = await spool.finish()
        assert path.exists()
    assert not path.exists()  # the spool cleans up after itself
