"""The small async Protocols the core depends on; adapters implement them.

Longer than 300 lines: every port the core knows is listed here, in one place, so that what an
adapter must implement (and what a fake must) is read in one file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

import pyarrow as pa

from service.models import (
    LedgerRecord,
    LoadResult,
    ObjectInfo,
    ObjectRef,
    RowFilter,
    Rows,
    Stored,
    StreamState,
    TableSpec,
    UnitResult,
    UnitState,
    UriSource,
)
from service.outcomes import UnitEnded


@dataclass(frozen=True)
class ListPage:
    """One page of an object listing; ``next_token`` is None on the last page."""

    objects: tuple[ObjectInfo, ...]
    next_token: str | None


class ObjectStore(Protocol):
    """Cloud Storage, or a directory standing in for it."""

    async def stat(self, ref: ObjectRef) -> ObjectInfo:
        """Metadata of the generation named (the live one when ``ref.generation`` is None)."""
        ...

    def read(self, ref: ObjectRef, chunk_bytes: int) -> AsyncIterator[bytes]:
        """Stream exactly the generation named, ``chunk_bytes`` at a time."""
        ...

    async def list(self, bucket: str, prefix: str) -> list[ObjectInfo]: ...

    async def list_page(
        self, bucket: str, prefix: str, page_token: str | None, page_size: int
    ) -> ListPage:
        """One page of the listing, in name order, from ``page_token`` (None: the first)."""
        ...

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


@dataclass(frozen=True)
class UriLoad:
    """One load the warehouse reads from the object store itself: the file, the table it goes
    to, the job id it is done once under, and the partition it replaces (if any)."""

    table: TableSpec
    source: UriSource
    job_id: str
    replace_partition: str | None = None


@runtime_checkable
class UriLoader(Protocol):
    """A warehouse that can load a file from the object store itself (no bytes through us)."""

    async def load_uri(self, load: UriLoad) -> LoadResult:
        """Same once-only guarantee as ``Warehouse.load_parquet``."""
        ...


class StreamWriter(Protocol):
    """BigQuery's Storage Write API with PENDING streams (or DuckDB standing in for it).

    Rows appended to a pending stream are invisible until the stream is finalized and
    committed; a commit is atomic and happens at most once per stream.
    """

    async def create_stream(self, table: TableSpec) -> str:
        """A new pending stream into ``table`` (created when missing); its name."""
        ...

    async def append(self, stream: str, batch: pa.RecordBatch, offset: int) -> bool:
        """Append ``batch`` at exactly ``offset``: True when appended now, False when rows
        are at that offset already (a resend whose first answer was lost). A dropped
        connection raises ConnectionLost: the caller resends from its first unanswered offset.
        """
        ...

    async def finalize(self, stream: str) -> int:
        """No more appends; the stream's row count."""
        ...

    async def commit(self, table: TableSpec, streams: Sequence[str]) -> bool:
        """Commit the finalized streams atomically: True when this call committed them, False
        when it was refused (committed already, or expired): ``describe`` says which."""
        ...

    async def describe(self, stream: str) -> StreamState:
        """What the warehouse knows of the stream now."""
        ...

    async def abandon(self, stream: str) -> None:
        """Drop a stream that will never be committed (a rejected file)."""
        ...

    async def close(self) -> None: ...


class StreamJournal(Protocol):
    """One unit's ledger record as the Write API path reads and writes it, under its lease:
    every write is a compare-and-set (LeaseLostError once another worker took the unit)."""

    @property
    def phase(self) -> str | None:
        """None, "writing" or "committing"."""
        ...

    @property
    def streams(self) -> tuple[str, ...]: ...

    @property
    def pending(self) -> UnitResult | None:
        """The result recorded with "committing": what a finished commit loaded."""
        ...

    async def writing(self, streams: tuple[str, ...]) -> None: ...

    async def committing(self, streams: tuple[str, ...], result: UnitResult) -> None: ...

    async def restart(self) -> None:
        """Forget the streams (they expired uncommitted): the next attempt writes anew."""
        ...


@dataclass(frozen=True)
class LedgerQuery:
    """Which ledger records a listing or a count covers: each filter given narrows it."""

    state: UnitState | None = None
    pipeline: str | None = None
    since: datetime | None = None  # updated at or after

    def matches(self, record: LedgerRecord) -> bool:
        return (
            self.state in (None, record.state)
            and self.pipeline in (None, record.pipeline)
            and (self.since is None or record.updated_at >= self.since)
        )


# The query with no filter: every record.
EVERY_RECORD = LedgerQuery()


class IdempotencyStore(Protocol):
    """The ledger's storage: four primitives with compare-and-set on a version token, two
    read-only queries (list and count) for people and the status page, and one for the claim
    (a name's last completed generation)."""

    async def get(self, key: str) -> Stored | None: ...

    async def create(self, record: LedgerRecord) -> str | None:
        """Put if absent: the new version, or None when the key already exists."""
        ...

    async def replace(self, record: LedgerRecord, expected_version: str) -> str | None:
        """Overwrite only if unchanged since ``expected_version``; None when it was not."""
        ...

    async def list(self, query: LedgerQuery = EVERY_RECORD, limit: int = 100) -> list[Stored]:
        """The records ``query`` covers, newest first, ``limit`` at most."""
        ...

    async def count(self, query: LedgerQuery, *, up_to: int) -> int:
        """How many records ``query`` covers, counted no further than ``up_to``."""
        ...

    async def last_completed(self, name_key: str) -> LedgerRecord | None:
        """The COMPLETED record of highest generation among those of ``name_key`` (one
        object name under one pipeline, ``UnitKey.name_digest``): one indexed read."""
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


class WorkPublisher(Protocol):
    """Where a sweep sends one unit of work each: the service's own topic, or this process."""

    async def publish(self, data: bytes, attributes: Mapping[str, str]) -> None:
        """Hand one encoded work message over; returns once it is accepted (not run)."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class SweepCursor:
    """How far one sweep has listed: resumed from ``page_token`` when it is delivered again."""

    key: str
    page_token: str | None
    published: int
    done: bool


class SweepCursors(Protocol):
    """Sweep progress, kept beside the ledger (its own collection or table)."""

    async def get(self, key: str) -> SweepCursor | None: ...

    async def put(self, cursor: SweepCursor) -> None: ...

    async def close(self) -> None: ...
