"""The small async Protocols the core depends on; adapters implement them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Protocol

from service.models import (
    LedgerRecord,
    LoadResult,
    ObjectInfo,
    ObjectRef,
    Stored,
    TableSpec,
    UnitState,
)


class ObjectStore(Protocol):
    """Cloud Storage, or a directory standing in for it."""

    async def stat(self, ref: ObjectRef) -> ObjectInfo:
        """Metadata of the generation named (the live one when ``ref.generation`` is None)."""
        ...

    def read(self, ref: ObjectRef, chunk_bytes: int) -> AsyncIterator[bytes]:
        """Stream exactly the generation named, ``chunk_bytes`` at a time."""
        ...

    async def list(self, bucket: str, prefix: str) -> list[ObjectInfo]: ...

    async def write(self, ref: ObjectRef, data: bytes, content_type: str) -> ObjectRef: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class Warehouse(Protocol):
    """BigQuery, or DuckDB standing in for it. Loads are idempotent by job id."""

    async def load_parquet(
        self, table: TableSpec, path: Path, job_id: str, *, replace_partition: str | None = None
    ) -> LoadResult:
        """Load the file once: a second call with the same job id adopts the first result."""
        ...

    async def count_rows(self, table: str) -> int: ...

    async def tables(self) -> list[tuple[str, int]]:
        """Every table this service can see, with its row count."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class IdempotencyStore(Protocol):
    """The ledger's storage: four primitives with compare-and-set on a version token."""

    async def get(self, key: str) -> Stored | None: ...

    async def create(self, record: LedgerRecord) -> str | None:
        """Put if absent: the new version, or None when the key already exists."""
        ...

    async def replace(self, record: LedgerRecord, expected_version: str) -> str | None:
        """Overwrite only if unchanged since ``expected_version``; None when it was not."""
        ...

    async def list(
        self, state: UnitState | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[Stored]: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
