"""The Write API's requests as built for the wire (the calls themselves run on the emulator:
tests/test_pipeline_stream_emulators.py)."""

from __future__ import annotations

import pyarrow as pa
from google.cloud.bigquery_storage_v1 import types

from service.adapters.gcp.bigquery_write import append_request


def test_the_first_request_names_the_stream_and_carries_the_schema() -> None:
    batch = pa.record_batch({"s": pa.array(["u", "u"])})
    first = append_request("streams/1", batch, 0, first=True)
    later = append_request("streams/1", batch, 2, first=False)
    assert (first.write_stream, first.offset, later.write_stream, later.offset) == (
        "streams/1",
        0,
        "",
        2,
    )
    schema = pa.ipc.read_schema(pa.py_buffer(first.arrow_rows.writer_schema.serialized_schema))
    assert schema.field("s").type == pa.string()
    rows = pa.ipc.read_record_batch(
        pa.py_buffer(later.arrow_rows.rows.serialized_record_batch), schema
    )
    assert rows.column(0).to_pylist() == ["u", "u"]
    assert later.arrow_rows.rows.row_count == 2
    assert "writer_schema" not in later.arrow_rows
    wire = types.AppendRowsRequest.serialize(later)
    assert types.AppendRowsRequest.deserialize(wire).offset == 2
