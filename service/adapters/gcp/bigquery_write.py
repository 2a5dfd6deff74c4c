"""The Storage Write API (gRPC) as a StreamWriter: Arrow record batches into PENDING streams.

One bidirectional AppendRows connection per stream, one request answered at a time: the first
request of a connection carries the stream name and the serialized Arrow schema, each request
one IPC record batch (under 10 MB: the API refuses larger ones with INVALID_ARGUMENT) at an
explicit offset. A dropped connection is ConnectionLost; the next append opens a new one.

IAM: every call here needs ``bigquery.tables.updateData`` on the table (dataEditor); creating
the table first is the load-job warehouse's (``prepare``). Quotas: CreateWriteStream is rate
limited per project and region (Google advises well under 40-50 calls a second); the pending
stream buffer has a size quota; pending streams not committed within 24 hours are removed.
Billing: Write API bytes beyond the monthly free tier (2 TiB) are charged per GiB.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from google.api_core import exceptions as api_errors
from google.api_core.gapic_v1 import method_async, routing_header
from google.cloud.bigquery_storage_v1 import types
from google.cloud.bigquery_storage_v1.services.big_query_write import BigQueryWriteAsyncClient
from google.cloud.bigquery_storage_v1.services.big_query_write.transports import (
    BigQueryWriteGrpcAsyncIOTransport,
)
from google.cloud.bigquery_storage_v1.services.big_query_write.transports.base import (
    DEFAULT_CLIENT_INFO,
)

from service.adapters.gcp.append_wire import append_rows_bytes
from service.adapters.gcp.errors import translate
from service.errors import ConnectionLost, PermanentError, TransientError
from service.models import StreamPhase, StreamState, TableSpec

log = logging.getLogger(__name__)

# google.rpc.Code values an AppendRowsResponse's error may carry.
ALREADY_EXISTS = 6
OUT_OF_RANGE = 11
APPEND_ROWS = "/google.cloud.bigquery.storage.v1.BigQueryWrite/AppendRows"
APPEND_TIMEOUT_SECONDS = 86400.0  # the client's own default for AppendRows


@dataclass
class _Connection:
    """One open AppendRows call: requests go in through the queue, answers come out in order."""

    requests: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    answers: AsyncIterator[types.AppendRowsResponse] | None = None
    sent_schema: bool = False

    async def outgoing(self) -> AsyncIterator[bytes]:
        while (request := await self.requests.get()) is not None:
            yield request


class BigQueryStreamWriter:
    def __init__(
        self,
        client: BigQueryWriteAsyncClient | None,
        project: str,
        prepare: Callable[[TableSpec], Awaitable[None]],
    ) -> None:
        self._client = client
        self.project = project
        self.prepare = prepare
        self._connections: dict[str, _Connection] = {}
        self._append_rows: Callable[..., Any] | None = None

    @classmethod
    def lazy(
        cls, project: str, prepare: Callable[[TableSpec], Awaitable[None]]
    ) -> BigQueryStreamWriter:
        """With the default credentials, the client made on first use (inside the loop)."""
        return cls(None, project, prepare)

    @property
    def client(self) -> BigQueryWriteAsyncClient:
        if self._client is None:
            self._client = BigQueryWriteAsyncClient()
        return self._client

    @classmethod
    def plaintext(
        cls, host_port: str, project: str, prepare: Callable[[TableSpec], Awaitable[None]]
    ) -> BigQueryStreamWriter:
        """Over an unencrypted channel, without credentials: for an emulator's gRPC port."""
        import grpc  # type: ignore[import-untyped]

        channel = grpc.aio.insecure_channel(host_port)
        transport = BigQueryWriteGrpcAsyncIOTransport(channel=channel)
        return cls(BigQueryWriteAsyncClient(transport=transport), project, prepare)

    def _parent(self, table: TableSpec) -> str:
        return f"projects/{self.project}/datasets/{table.dataset}/tables/{table.table}"

    async def create_stream(self, table: TableSpec) -> str:
        await self.prepare(table)
        wanted = types.WriteStream(type_=types.WriteStream.Type.PENDING)
        try:
            # CreateWriteStream: the client retries UNAVAILABLE and DEADLINE_EXCEEDED.
            stream = await self.client.create_write_stream(
                parent=self._parent(table), write_stream=wanted
            )
        except api_errors.GoogleAPICallError as exc:
            raise translate(exc, f"create write stream on {table.name}") from exc
        return str(stream.name)

    async def _open(self, stream: str) -> _Connection:
        connection = self._connections.get(stream)
        if connection is None:
            connection = _Connection()
            # The stream's region is routed by this header (the client's own AppendRows
            # cannot set it: the stream is named inside the first request).
            routing = routing_header.to_grpc_metadata((("write_stream", stream),))
            call = await self._appender()(connection.outgoing(), metadata=(routing,))
            connection.answers = aiter(call)
            self._connections[stream] = connection
        return connection

    def _appender(self) -> Callable[..., Any]:
        """AppendRows on the client's channel, taking requests already in wire form
        (append_wire.py), with the client's own metadata, timeout and error wrapping. Never
        retried here: a resend is ours, at the same offset."""
        if self._append_rows is None:
            transport = self.client.transport
            assert isinstance(transport, BigQueryWriteGrpcAsyncIOTransport)  # the async client's
            method = transport.grpc_channel.stream_stream(
                APPEND_ROWS,
                request_serializer=None,
                response_deserializer=types.AppendRowsResponse.deserialize,
            )
            self._append_rows = method_async.wrap_method(
                method, default_timeout=APPEND_TIMEOUT_SECONDS, client_info=DEFAULT_CLIENT_INFO
            )
        return self._append_rows

    def _drop(self, stream: str) -> None:
        connection = self._connections.pop(stream, None)
        if connection is not None:
            connection.requests.put_nowait(None)

    async def append(self, stream: str, batch: pa.RecordBatch, offset: int) -> bool:
        try:
            connection = await self._open(stream)
            request = append_rows_bytes(stream, batch, offset, first=not connection.sent_schema)
            await connection.requests.put(request)
            connection.sent_schema = True
            assert connection.answers is not None
            answer = await anext(connection.answers)
        except (api_errors.GoogleAPICallError, StopAsyncIteration, OSError) as exc:
            self._drop(stream)
            raise ConnectionLost(f"AppendRows on {stream}: {exc!r}") from exc
        except Exception as exc:  # grpc.aio errors that the client did not wrap
            if type(exc).__module__.startswith("grpc"):
                self._drop(stream)
                raise ConnectionLost(f"AppendRows on {stream}: {exc!r}") from exc
            raise
        return self._verdict(stream, offset, answer)

    def _verdict(self, stream: str, offset: int, answer: types.AppendRowsResponse) -> bool:
        if "error" not in answer:
            return True
        code, message = answer.error.code, answer.error.message
        if code == ALREADY_EXISTS:
            return False  # the rows at this offset are there: an earlier send applied
        self._drop(stream)  # the server ends the connection after an error
        if code == OUT_OF_RANGE:
            raise TransientError(f"append to {stream} at {offset}: {message}")
        raise PermanentError(f"append to {stream} at {offset} refused ({code}): {message}")

    async def finalize(self, stream: str) -> int:
        self._drop(stream)
        try:
            done = await self.client.finalize_write_stream(name=stream)
        except api_errors.GoogleAPICallError as exc:
            raise translate(exc, f"finalize {stream}") from exc
        return int(done.row_count)

    async def commit(self, table: TableSpec, streams: Sequence[str]) -> bool:
        try:
            # BatchCommitWriteStreams is atomic and safe to retry: a stream commits once.
            request = types.BatchCommitWriteStreamsRequest(
                parent=self._parent(table), write_streams=list(streams)
            )
            done = await self.client.batch_commit_write_streams(request=request)
        except api_errors.GoogleAPICallError as exc:
            raise translate(exc, f"commit {', '.join(streams)}") from exc
        if "commit_time" in done and not done.stream_errors:
            return True
        for error in done.stream_errors:
            log.warning("commit refused for %s: %s", error.entity, error.error_message)
        return False

    async def describe(self, stream: str) -> StreamState:
        try:
            found = await self.client.get_write_stream(name=stream)
        except api_errors.NotFound:
            return StreamState(stream, StreamPhase.UNKNOWN)
        except api_errors.GoogleAPICallError as exc:
            raise translate(exc, f"get {stream}") from exc
        if "commit_time" in found:
            return StreamState(stream, StreamPhase.COMMITTED)
        return StreamState(stream, StreamPhase.PENDING)

    async def abandon(self, stream: str) -> None:
        self._drop(stream)  # a pending stream never committed just expires

    async def close(self) -> None:
        for stream in list(self._connections):
            self._drop(stream)
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._close_transport()

    async def _close_transport(self) -> Any:
        return await self.client.transport.close()
