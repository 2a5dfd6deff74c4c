"""AppendRows requests written by hand are the bytes protobuf writes for the same message."""

from __future__ import annotations

import pyarrow as pa
import pytest
from google.cloud.bigquery_storage_v1 import types

from service.adapters.gcp.append_wire import append_rows_bytes

STREAM = "projects/p/datasets/d/tables/t/streams/Cj4wMDAw"


def by_protobuf(stream: str, batch: pa.RecordBatch, offset: int, *, first: bool) -> bytes:
    request = types.AppendRowsRequest.pb()()
    request.offset.value = offset
    rows = request.arrow_rows.rows
    rows.serialized_record_batch = batch.serialize().to_pybytes()
    rows.row_count = batch.num_rows
    if first:
        request.write_stream = stream
        schema = request.arrow_rows.writer_schema
        schema.serialized_schema = batch.schema.serialize().to_pybytes()
    encoded: bytes = request.SerializeToString()
    return encoded


def batch_of(rows: int) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {"id": list(range(rows)), "name": [f"n{i}" * (i % 50) for i in range(rows)]}
    )


@pytest.mark.parametrize("rows", [0, 1, 3, 1000, 100_000])
@pytest.mark.parametrize("offset", [0, 1, 127, 128, 2**31, 2**62])
@pytest.mark.parametrize("first", [True, False])
def test_the_request_is_what_protobuf_writes(rows: int, offset: int, first: bool) -> None:
    batch = batch_of(rows)
    assert append_rows_bytes(STREAM, batch, offset, first=first) == by_protobuf(
        STREAM, batch, offset, first=first
    )


def test_the_request_reads_back_as_the_message() -> None:
    batch = batch_of(10)
    request = types.AppendRowsRequest.deserialize(append_rows_bytes(STREAM, batch, 7, first=True))
    assert (request.write_stream, request.offset, request.arrow_rows.rows.row_count) == (
        STREAM,
        7,
        10,
    )
    ipc = pa.py_buffer(request.arrow_rows.rows.serialized_record_batch)
    schema = pa.ipc.read_schema(pa.py_buffer(request.arrow_rows.writer_schema.serialized_schema))
    assert pa.ipc.read_record_batch(ipc, schema).equals(batch)
