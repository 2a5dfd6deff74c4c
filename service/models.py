"""Internal values shared by the edge, the core and the adapters (frozen dataclasses)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    name: str
    generation: int | None = None

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.name}"


@dataclass(frozen=True)
class ObjectInfo:
    """What the object store knows about one object generation."""

    ref: ObjectRef
    size: int
    content_type: str | None = None
    content_encoding: str | None = None
    md5_base64: str | None = None
    crc32c_base64: str | None = None
    updated: datetime | None = None


@dataclass(frozen=True)
class EventMeta:
    """Where an event came from: enough to log it and find it again."""

    event_id: str
    event_type: str
    source: str
    time: datetime | None = None
    shape: str = "unknown"
    delivery_attempt: int | None = None


@dataclass(frozen=True)
class ObjectFinalized:
    meta: EventMeta
    object: ObjectInfo
    metageneration: int | None = None


@dataclass(frozen=True)
class SweepRequested:
    meta: EventMeta
    pipeline: str
    date: str | None = None
    prefix: str | None = None


@dataclass(frozen=True)
class UnitRequested:
    """One object generation for one pipeline, as a sweep's fan-out publishes it."""

    meta: EventMeta
    pipeline: str
    object: ObjectInfo


@dataclass(frozen=True)
class Ignored:
    meta: EventMeta
    reason: str


Event = ObjectFinalized | SweepRequested | UnitRequested | Ignored


# A unit as `ingest` prints it (``str(UnitKey)``): PIPELINE:gs://BUCKET/NAME#GENERATION.
UNIT_PATTERN = re.compile(r"^(?P<pipeline>[^:]+):gs://(?P<bucket>[^/]+)/(?P<name>.+)#(?P<gen>\d+)$")


class UnitState(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class UnitKey:
    """One object generation for one pipeline: the unit of work and of idempotency."""

    pipeline: str
    bucket: str
    name: str
    generation: int

    def __str__(self) -> str:
        return f"{self.pipeline}:gs://{self.bucket}/{self.name}#{self.generation}"

    @classmethod
    def parse(cls, text: str) -> UnitKey | None:
        """The unit a printed unit string names, or None when the text is not one."""
        found = UNIT_PATTERN.match(text.strip())
        if found is None:
            return None
        return cls(found["pipeline"], found["bucket"], found["name"], int(found["gen"]))

    @property
    def digest(self) -> str:
        """A stable id safe for any backend (Firestore ids cannot hold '/')."""
        return hashlib.sha256(str(self).encode()).hexdigest()[:40]

    @property
    def name_digest(self) -> str:
        """The same for every generation of the object under this pipeline (its name's key)."""
        named = f"{self.pipeline}:gs://{self.bucket}/{self.name}"
        return hashlib.sha256(named.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class UnitResult:
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    job_id: str | None = None
    table: str | None = None
    quarantine_uri: str | None = None
    durations: dict[str, float] = field(default_factory=dict)  # seconds per stage
    # Nothing loaded: the object's bytes are those of this earlier generation, loaded already.
    same_content_as: int | None = None
    # Good rows not loaded because the file was rejected whole (read = loaded + quarantined +
    # rejected; quarantined is what the quarantine object holds).
    rows_rejected: int = 0
    seconds: float | None = None  # the wall time of the attempt that ended the unit
    bad_reasons: dict[str, int] = field(default_factory=dict)  # most frequent reason kinds


@dataclass(frozen=True)
class Column:
    """One field of a BigQuery JSON schema; a RECORD holds its own ``fields``, to any depth."""

    name: str
    type: str
    mode: str = "NULLABLE"  # NULLABLE, REQUIRED or REPEATED (an array; never NULL, no NULLs)
    description: str | None = None
    fields: tuple[Column, ...] = ()

    @property
    def required(self) -> bool:
        return self.mode == "REQUIRED"

    @property
    def repeated(self) -> bool:
        return self.mode == "REPEATED"

    @property
    def nested(self) -> bool:
        """Whether values are RECORDs or arrays rather than one scalar."""
        return self.repeated or self.type == "RECORD"

    @property
    def item(self) -> Column:
        """One element of a REPEATED column (the column itself otherwise)."""
        return replace(self, mode="NULLABLE") if self.repeated else self


@dataclass(frozen=True)
class TableSpec:
    """A destination table: ``dataset.table`` and what to create it with."""

    name: str
    columns: tuple[Column, ...]
    partition_field: str | None = None
    clustering: tuple[str, ...] = ()

    @property
    def dataset(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def table(self) -> str:
        return self.name.split(".", 1)[1]


@dataclass(frozen=True)
class LoadResult:
    job_id: str
    rows_loaded: int
    adopted: bool = False  # True when the job already existed (a retried load)


class StreamPhase(StrEnum):
    """Where a Write API stream is, as far as the warehouse can tell."""

    PENDING = "PENDING"  # appends may still come
    FINALIZED = "FINALIZED"  # closed, not committed: the rows are invisible
    COMMITTED = "COMMITTED"  # the rows are in the table
    GONE = "GONE"  # no such stream, and its rows were never committed (a rolled-back unit)
    UNKNOWN = "UNKNOWN"  # no such stream any more: expired, or committed long ago


@dataclass(frozen=True)
class StreamState:
    name: str
    phase: StreamPhase
    rows: int | None = None  # the finalized row count, when known


@dataclass(frozen=True)
class UriSource:
    """How a warehouse should read a file straight from the object store (BigQuery's names)."""

    uri: str
    format: str  # CSV, NEWLINE_DELIMITED_JSON or PARQUET
    field_delimiter: str = ","
    quote_character: str = '"'
    skip_leading_rows: int = 0
    encoding: str = "UTF-8"
    null_marker: str | None = None
    allow_quoted_newlines: bool = False


@dataclass(frozen=True)
class LedgerRecord:
    """One unit's document in the idempotency ledger."""

    key: str
    unit: str
    pipeline: str
    state: UnitState
    owner: str
    lease_expires_at: datetime
    fingerprint: str
    attempt: int
    created_at: datetime
    updated_at: datetime
    expire_at: datetime
    event_id: str | None = None
    object_uri: str | None = None
    result: UnitResult | None = None
    error: str | None = None
    # The load job id this unit submits under: kept across takeovers, so a later attempt adopts
    # the earlier job even when the pipeline's settings (and so its fresh job id) changed.
    job_id: str | None = None
    # The object's name across its generations (UnitKey.name_digest) and this generation, so
    # the ledger can find a name's last completed generation; None in records written earlier.
    name_key: str | None = None
    generation: int | None = None
    # The generation's CRC32C (base64), kept beside the fingerprint (MD5 when there is one).
    crc32c: str | None = None
    # The Write API path (``load = "stream"``): "writing" or "committing", and its streams.
    write_phase: str | None = None
    write_streams: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stored:
    """A ledger record with the store's version token (for compare-and-set)."""

    record: LedgerRecord
    version: str


# The comparisons a row filter may use: a fixed set, so no text of the caller's becomes SQL.
FILTER_OPERATORS = ("!=", "<=", ">=", "=", "<", ">")


@dataclass(frozen=True)
class RowFilter:
    """One condition of ``ingest peek --where``: ``column op value``.

    The column must be one of the table's (checked against its schema, then quoted), the
    operator one of FILTER_OPERATORS, and the value is sent as a query parameter cast to the
    column's type: nothing the caller types is ever spliced into SQL.
    """

    column: str
    operator: str
    value: str


@dataclass(frozen=True)
class Rows:
    """Some rows of a table, as the warehouse returned them."""

    columns: tuple[str, ...]
    rows: tuple[tuple[object, ...], ...]
