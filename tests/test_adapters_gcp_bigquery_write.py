"""The Write API adapter's AppendRows call against an in-process gRPC server on 127.0.0.1: the
stream named in the routing header, requests in their wire form, answers read in order (the
whole protocol runs on the emulator: tests/test_pipeline_stream_emulators.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc  # type: ignore[import-untyped]
import pyarrow as pa
from google.cloud.bigquery_storage_v1 import types

from service.adapters.gcp.bigquery_write import BigQueryStreamWriter
from service.models import TableSpec

STREAM = "projects/p/datasets/d/tables/t/streams/s1"
SERVICE = "google.cloud.bigquery.storage.v1.BigQueryWrite"


class Recorder:
    """Answers every append with its offset; keeps the requests and the call's metadata."""

    def __init__(self) -> None:
        self.requests: list[types.AppendRowsRequest] = []
        self.metadata: list[tuple[str, str]] = []

    async def append_rows(
        self, requests: AsyncIterator[types.AppendRowsRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[types.AppendRowsResponse]:
        self.metadata = [(k, v) for k, v in context.invocation_metadata() or ()]
        async for request in requests:
            self.requests.append(request)
            yield types.AppendRowsResponse(append_result={"offset": request.offset})


async def no_table(table: TableSpec) -> None:
    return None


async def test_appends_name_the_stream_for_routing_and_go_in_wire_form() -> None:
    recorder = Recorder()
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "AppendRows": grpc.stream_stream_rpc_method_handler(
                recorder.append_rows,
                request_deserializer=types.AppendRowsRequest.deserialize,
                response_serializer=types.AppendRowsResponse.serialize,
            )
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    writer = BigQueryStreamWriter.plaintext(f"127.0.0.1:{port}", "p", no_table)
    try:
        batch = pa.record_batch({"s": pa.array(["u", "v"])})
        assert await writer.append(STREAM, batch, 0)
        assert await writer.append(STREAM, batch.slice(1), 2)
    finally:
        await writer.close()
        await server.stop(None)
    assert ("x-goog-request-params", f"write_stream={STREAM}") in recorder.metadata
    first, later = recorder.requests
    assert (first.write_stream, first.offset, later.write_stream, later.offset) == (
        STREAM,
        0,
        "",
        2,
    )
    schema = pa.ipc.read_schema(pa.py_buffer(first.arrow_rows.writer_schema.serialized_schema))
    rows = pa.ipc.read_record_batch(
        pa.py_buffer(later.arrow_rows.rows.serialized_record_batch), schema
    )
    assert rows.column(0).to_pylist() == ["v"]
    assert "writer_schema" not in later.arrow_rows
    assert any(k == "x-goog-api-client" for k, _ in recorder.metadata)
