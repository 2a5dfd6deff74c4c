"""spool: validated batches to a temporary Parquet file that cleans up after itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyarrow as pa
import pytest

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


async def test_a_write_left_running_by_a_cancelled_unit_finishes_before_the_spool_closes(
    tmp_path: Path,
) -> None:
    # Cancelling the awaiting task does not stop the worker thread: closing the writer under
    # it freed what pyarrow was writing, and the process died of a segfault.
    batch = pa.RecordBatch.from_pydict({"id": pa.array(range(2_000_000), pa.int64())})
    async with ParquetSpool(batch.schema, tmp_path) as spool:
        writing = asyncio.create_task(spool.write(batch))
        await asyncio.sleep(0.01)  # the write is under way in its thread
        writing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writing
    assert not spool._writer.is_open
    assert not spool.path.exists()
