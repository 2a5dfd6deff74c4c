"""What every stage of one unit may know: the unit, its pipeline, its object, its event.

Also the small values the stages hand each other (bad rows, row numbering), so that no stage
needs to import another.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import dataclass, field
from datetime import date, datetime

from service.errors import PermanentError
from service.models import EventMeta, ObjectInfo, UnitKey
from service.pipeline.definition import Pipeline
from service.pipeline.progress import Progress
from service.ports import StreamJournal

# The first bytes of every gzip member.
GZIP_MAGIC = b"\x1f\x8b"
# Raw content kept per quarantined row; longer rows are clipped (a 10 MB line stays readable).
MAX_RAW_CHARS = 64 * 1024
# A quoted value inside a bad row's reason (casts quote the value they refused with repr()).
QUOTED_VALUE = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
# What follows "not valid JSON:" names a position in the line, which differs for every row.
JSON_DETAIL = re.compile(r"^(not valid JSON: [^:(]*?)\s*(?::|\(|line \d).*$")
# Longest reason kind kept (kinds are keys of the ledger's per-unit reason counts).
MAX_KIND_CHARS = 200


@dataclass(frozen=True)
class UnitContext:
    key: UnitKey
    pipeline: Pipeline
    object: ObjectInfo
    event: EventMeta
    started_at: datetime
    # The stages report here as they work; the watchdog reads it.
    progress: Progress = field(default_factory=Progress, compare=False, repr=False)
    # The job id the unit's ledger record holds (an earlier attempt's); None: derive it.
    recorded_job_id: str | None = None
    # The unit's ledger record, for the Write API path (``load = "stream"``).
    journal: StreamJournal | None = field(default=None, compare=False, repr=False)

    @property
    def job_id(self) -> str:
        """The recorded one, else derived from the unit and the pipeline's version."""
        return self.recorded_job_id or derived_job_id(self.key, self.pipeline)

    @property
    def declared_gzip(self) -> bool | None:
        """Whether the pipeline or the object's metadata (a ``.gz`` name, ``Content-Encoding:
        gzip``) say the object is gzip; None when only its first bytes can tell."""
        mode = self.pipeline.compression
        if mode != "auto":
            return mode == "gzip"
        info = self.object
        named = info.ref.name.endswith(".gz") or (info.content_encoding or "").lower() == "gzip"
        return True if named else None

    def path_partition_day(self) -> date | None:
        """The partition a replace-partition pipeline replaces, when the path names it."""
        p = self.pipeline
        if p.write_mode != "replace_partition" or p.partition_date != "path":
            return None
        found = re.search(p.partition_pattern, self.object.ref.name)
        if found is None:
            raise PermanentError(
                f"replace_partition: no date matching {p.partition_pattern!r} in the object name"
            )
        try:
            return date.fromisoformat(found.group(1))
        except ValueError as exc:
            raise PermanentError(f"replace_partition: {found.group(1)!r} is not a date") from exc

    def is_gzip(self, head: bytes) -> bool:
        """The gzip rule: what was declared, else the magic bytes at the head of the object."""
        declared = self.declared_gzip
        return head.startswith(GZIP_MAGIC) if declared is None else declared


def derived_job_id(key: UnitKey, pipeline: Pipeline) -> str:
    """Derived from the unit and the pipeline's version: a retried load reuses it."""
    digest = hashlib.sha256(f"{key}|{pipeline.version}".encode()).hexdigest()
    return f"ingest_{pipeline.name}_{digest[:32]}"[:1000]


@dataclass(frozen=True)
class BadRow:
    """One row that could not be loaded, kept in the quarantine with its reason."""

    row: int | None
    reason: str
    raw: str

    @classmethod
    def clipped(cls, row: int | None, reason: str, raw: str) -> BadRow:
        if len(raw) > MAX_RAW_CHARS:
            raw = raw[:MAX_RAW_CHARS] + f"... [{len(raw) - MAX_RAW_CHARS} more characters]"
        return cls(row, reason, raw)

    @property
    def kind(self) -> str:
        return reason_kind(self.reason)


def reason_kind(reason: str) -> str:
    """A bad row's reason without the row's own values: rows with the same fault share it
    ("amount: 'x1' is not a valid INTEGER" -> "amount: … is not a valid INTEGER")."""
    kind = JSON_DETAIL.sub(r"\1", QUOTED_VALUE.sub("…", reason))
    return kind[:MAX_KIND_CHARS]


@dataclass(frozen=True)
class RowNumbers:
    """Row numbers of one batch's rows in the file.

    A row number is the record's position among the file's data records (1-based, after the
    header; blank lines do not count, records dropped at parse time do). ``skipped`` holds the
    numbers of records the parser dropped inside this batch's span, in order.
    """

    first: int
    skipped: tuple[int, ...] = ()

    def of(self, index: int) -> int:
        """The row number of the batch's ``index``-th row."""
        number = self.first + index
        counted = 0
        while True:
            # Every dropped record at or before the candidate pushes the row one further.
            seen = bisect.bisect_right(self.skipped, number)
            if seen == counted:
                return number
            number += seen - counted
            counted = seen
