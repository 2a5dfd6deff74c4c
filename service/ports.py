"""The small async Protocols the core depends on; adapters implement them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from service.models import (
    LedgerRecord,
    LoadResult,
    ObjectInfo,
    ObjectRef,
    RowFilter,
    Rows,
    Stored,
    TableSpec,
    UnitState,
    UriSource,
)
from service.outcomes import UnitEnded


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


@runtime_checkable
class GenerationCopier(Protocol):
    """An object store that copies one exact generation server-side (Cloud Storage).

    A ``gs://`` load URI cannot name a generation; a copy of the event's generation can be
    loaded instead, so an overwrite meanwhile cannot change what the unit loads.
    """

    async def copy_generation(self, source: ObjectRef, target: ObjectRef) -> ObjectRef:
        """Copy exactly ``source.generation`` to ``target`` unless ``target`` exists already
        (an earlier attempt made the same copy); the copy's ref."""
        ...

    async def delete(self, ref: ObjectRef) -> None:
        """Delete the object (the generation named, if one is); a missing one is no error."""
        ...


class Warehouse(Protocol):
    """BigQuery, or DuckDB standing in for it. Loads are idempotent by job id."""

    async def load_parquet(
        self, table: TableSpec, path: Path, job_id: str, *, replace_partition: str | None = None
    ) -> LoadResult:
        """Load the file once: a second call with the same job id adopts the first result."""
        ...

    async def load_running(self, job_id: str) -> bool:
        """Whether the load of that job id (``load_parquet`` or ``load_uri``) is still running:
        the watchdog counts it as the unit's progress."""
        ...

    async def count_rows(self, table: str) -> int: ...

    async def tables(self) -> list[tuple[str, int]]:
        """Every table this service can see, with its row count."""
        ...

    async def peek(self, table: str, limit: int, where: Sequence[RowFilter] = ()) -> Rows:
        """Up to ``limit`` rows of ``dataset.table`` matching every filter (read only).
        A table or column that does not exist is a NotFoundError or PermanentError."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class UriLoader(Protocol):
    """A warehouse that can load a file from the object store itself (no bytes through us)."""

    async def load_uri(
        self,
        table: TableSpec,
        source: UriSource,
        job_id: str,
        *,
        replace_partition: str | None = None,
    ) -> LoadResult:
        """Same once-only guarantee as ``Warehouse.load_parquet``."""
        ...


class IdempotencyStore(Protocol):
    """The ledger's storage: four primitives with compare-and-set on a version token, and two
    read-only queries (list and count) for people and the status page."""

    async def get(self, key: str) -> Stored | None: ...

    async def create(self, record: LedgerRecord) -> str | None:
        """Put if absent: the new version, or None when the key already exists."""
        ...

    async def replace(self, record: LedgerRecord, expected_version: str) -> str | None:
        """Overwrite only if unchanged since ``expected_version``; None when it was not."""
        ...

    async def list(
        self,
        state: UnitState | None = None,
        since: datetime | None = None,
        limit: int = 100,
        *,
        pipeline: str | None = None,
    ) -> list[Stored]:
        """Newest first; each filter given narrows the listing."""
        ...

    async def count(self, state: UnitState, *, pipeline: str | None = None, up_to: int) -> int:
        """Records in ``state`` (of ``pipeline`` when given), counted no further than ``up_to``."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class OutcomePublisher(Protocol):
    """Where finished units are announced: a Pub/Sub topic, a JSONL file, or nowhere."""

    async def publish(self, outcome: UnitEnded) -> None: ...

    async def close(self) -> None: ...


class MessageSink(Protocol):
    """A Pub/Sub topic, for raw messages (replay through a topic)."""

    async def publish(self, data: bytes, attributes: Mapping[str, str]) -> str:
        """Publish one message; its message id."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class PulledMessage:
    """One message a MessageSource handed out; ``ack_id`` settles it."""

    ack_id: str
    message_id: str
    data: bytes
    attributes: dict[str, str]
    publish_time: datetime | None
    delivery_attempt: int | None = None


class MessageSource(Protocol):
    """A Pub/Sub pull subscription (dead-letter re-drive)."""

    async def pull(self, max_messages: int, wait_seconds: float) -> list[PulledMessage]:
        """Up to ``max_messages``, leased; an empty list when none came within the wait."""
        ...

    async def ack(self, ack_ids: Sequence[str]) -> None: ...

    async def lease(self, ack_ids: Sequence[str], seconds: int) -> None:
        """Keep the messages for ``seconds`` more; 0 gives them back at once."""
        ...

    async def close(self) -> None: ...
