"""Ports that keep everything in this process, for ``ingest try``: one local file stands for one
object, writes (the quarantine) are kept in memory, and the warehouse loads nothing (it counts
the rows a unit would load and keeps the first few). Nothing is written anywhere."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pyarrow.parquet as pq

from service.errors import NotFoundError
from service.models import LoadResult, ObjectInfo, ObjectRef, RowFilter, Rows, TableSpec
from service.ports import ListPage


class OneFileStore:
    """A store holding one object, read from a local file; ``written`` keeps what was written."""

    def __init__(self, path: Path, ref: ObjectRef) -> None:
        self.path = path
        self.ref = ref
        self.written: dict[ObjectRef, bytes] = {}

    async def stat(self, ref: ObjectRef) -> ObjectInfo:
        self._check(ref)
        return ObjectInfo(self.ref, self.path.stat().st_size)

    async def read(self, ref: ObjectRef, chunk_bytes: int) -> AsyncIterator[bytes]:
        self._check(ref)
        with self.path.open("rb") as file:
            while chunk := await asyncio.to_thread(file.read, chunk_bytes):
                yield chunk

    async def list(self, bucket: str, prefix: str) -> list[ObjectInfo]:
        return [await self.stat(self.ref)]

    async def list_page(
        self, bucket: str, prefix: str, page_token: str | None, page_size: int
    ) -> ListPage:
        return ListPage(tuple(await self.list(bucket, prefix)), None)

    async def write(self, ref: ObjectRef, data: bytes, content_type: str) -> ObjectRef:
        self.written[ref] = data
        return ref

    def _check(self, ref: ObjectRef) -> None:
        if (ref.bucket, ref.name) != (self.ref.bucket, self.ref.name):
            raise NotFoundError(f"{ref.uri}: only {self.ref.uri} is here")

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


class DryWarehouse:
    """Loads nothing: what a load would put in the table is counted, its first rows kept."""

    def __init__(self, keep_rows: int) -> None:
        self.keep_rows = keep_rows
        self.first = Rows((), ())

    async def load_parquet(
        self, table: TableSpec, path: Path, job_id: str, *, replace_partition: str | None = None
    ) -> LoadResult:
        self.first, count = await asyncio.to_thread(self._read, path)
        return LoadResult(job_id, count)

    def _read(self, path: Path) -> tuple[Rows, int]:
        file = pq.ParquetFile(path)
        rows: list[tuple[object, ...]] = []
        if self.keep_rows:
            for batch in file.iter_batches(batch_size=self.keep_rows):
                rows = [tuple(r.values()) for r in batch.to_pylist()]
                break
        return Rows(tuple(file.schema_arrow.names), tuple(rows)), file.metadata.num_rows

    async def load_running(self, job_id: str) -> bool:
        return False

    async def count_rows(self, table: str) -> int:
        return 0

    async def tables(self) -> list[tuple[str, int]]:
        return []

    async def peek(self, table: str, limit: int, where: Sequence[RowFilter] = ()) -> Rows:
        return self.first

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
