"""Fault injection for reliability runs: wraps the object store, the warehouse and the Write
API so that a share of calls fail with a TransientError, half before the call and half after it
(a lost answer: the work happened but the caller never heard). Off unless INGEST_FAULT_RATE > 0.

A Write API commit is also held back ``COMMIT_HOLD_SECONDS`` after a log line saying so: the
ledger says "committing" and the stream is finalized, so a chaos run that kills the process on
that line lands its kill between finalize and commit.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import pyarrow as pa

from service.adapters.stream_faults import StreamWriterWrapper
from service.errors import TransientError
from service.models import (
    LoadResult,
    ObjectInfo,
    ObjectRef,
    RowFilter,
    Rows,
    TableSpec,
)
from service.ports import ListPage, ObjectStore, StreamWriter, UriLoad, UriLoader, Warehouse

log = logging.getLogger(__name__)
T = TypeVar("T")
# How long a faulty Write API holds each commit back, after logging that it does.
COMMIT_HOLD_SECONDS = 0.5


class FaultInjector:
    def __init__(self, rate: float, seed: int | None = None) -> None:
        self.rate = rate
        self.random = random.Random(seed)
        self.injected = 0

    def roll(self) -> float:
        return self.random.random()

    def check(self, what: str, when: str, roll: float) -> None:
        # A share ``rate`` of calls fail: half of them before the call, half after it.
        limit = self.rate / 2 if when == "before" else self.rate
        if roll < limit:
            self.injected += 1
            log.warning("injected fault %s %s", when, what)
            raise TransientError(f"injected fault {when} {what}")

    async def call(self, what: str, work: Callable[[], Awaitable[T]]) -> T:
        roll = self.roll()
        self.check(what, "before", roll)
        result = await work()
        self.check(what, "after", roll)
        return result


class FaultyObjectStore:
    def __init__(self, inner: ObjectStore, faults: FaultInjector) -> None:
        self.inner = inner
        self.faults = faults

    async def stat(self, ref: ObjectRef) -> ObjectInfo:
        return await self.faults.call("stat", lambda: self.inner.stat(ref))

    async def read(self, ref: ObjectRef, chunk_bytes: int) -> AsyncIterator[bytes]:
        roll = self.faults.roll()
        self.faults.check("read", "before", roll)
        async for chunk in self.inner.read(ref, chunk_bytes):
            yield chunk
        self.faults.check("read", "after", roll)

    async def list(self, bucket: str, prefix: str) -> list[ObjectInfo]:
        return await self.faults.call("list", lambda: self.inner.list(bucket, prefix))

    async def list_page(
        self, bucket: str, prefix: str, page_token: str | None, page_size: int
    ) -> ListPage:
        return await self.faults.call(
            "list", lambda: self.inner.list_page(bucket, prefix, page_token, page_size)
        )

    async def write(self, ref: ObjectRef, data: bytes, content_type: str) -> ObjectRef:
        return await self.faults.call("write", lambda: self.inner.write(ref, data, content_type))

    async def ping(self) -> None:
        await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()


class FaultyWarehouse:
    def __init__(self, inner: Warehouse, faults: FaultInjector) -> None:
        self.inner = inner
        self.faults = faults

    async def load_parquet(
        self, table: TableSpec, path: Path, job_id: str, *, replace_partition: str | None = None
    ) -> LoadResult:
        return await self.faults.call(
            "load",
            lambda: self.inner.load_parquet(
                table, path, job_id, replace_partition=replace_partition
            ),
        )

    async def load_running(self, job_id: str) -> bool:
        return await self.inner.load_running(job_id)

    async def count_rows(self, table: str) -> int:
        return await self.inner.count_rows(table)

    async def tables(self) -> list[tuple[str, int]]:
        return await self.inner.tables()

    async def peek(self, table: str, limit: int, where: Sequence[RowFilter] = ()) -> Rows:
        return await self.inner.peek(table, limit, where)  # a read for people: no faults

    async def ping(self) -> None:
        await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()


class FaultyUriWarehouse(FaultyWarehouse):
    """The same, for a warehouse that also loads straight from gs:// (the fast path)."""

    def __init__(self, inner: Warehouse, loader: UriLoader, faults: FaultInjector) -> None:
        super().__init__(inner, faults)
        self.loader = loader

    async def load_uri(self, load: UriLoad) -> LoadResult:
        return await self.faults.call("load_uri", lambda: self.loader.load_uri(load))


def faulty_warehouse(inner: Warehouse, faults: FaultInjector) -> Warehouse:
    """Wrap a warehouse, keeping its gs:// fast path when it has one."""
    if isinstance(inner, UriLoader):
        return FaultyUriWarehouse(inner, inner, faults)
    return FaultyWarehouse(inner, faults)


class FaultyStreamWriter(StreamWriterWrapper):
    """The Write API with faults on every call that changes something."""

    def __init__(self, inner: StreamWriter, faults: FaultInjector) -> None:
        super().__init__(inner)
        self.faults = faults

    async def create_stream(self, table: TableSpec) -> str:
        return await self.faults.call("create_stream", lambda: self.inner.create_stream(table))

    async def append(self, stream: str, batch: pa.RecordBatch, offset: int) -> bool:
        return await self.faults.call("append", lambda: self.inner.append(stream, batch, offset))

    async def finalize(self, stream: str) -> int:
        return await self.faults.call("finalize", lambda: self.inner.finalize(stream))

    async def commit(self, table: TableSpec, streams: Sequence[str]) -> bool:
        log.warning("holding commit of %s for %gs", ", ".join(streams), COMMIT_HOLD_SECONDS)
        await asyncio.sleep(COMMIT_HOLD_SECONDS)
        return await self.faults.call("commit", lambda: self.inner.commit(table, streams))
