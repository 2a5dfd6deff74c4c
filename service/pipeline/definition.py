"""Pipeline definitions: what each pipeline reads, how, and where it loads.

Values only; ``service.pipeline.pipelines_file`` reads them from the pipelines file.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from service.models import Column, TableSpec

Format = Literal["csv", "ndjson", "parquet"]
Compression = Literal["auto", "gzip", "none"]
WriteMode = Literal["append", "replace_partition"]
LoadPath = Literal["job", "stream"]
PartitionSource = Literal["path", "column"]

# Lineage columns added to every loaded row when a pipeline asks for lineage.
LINEAGE_COLUMNS = (
    Column("_source_uri", "STRING"),
    Column("_source_generation", "INTEGER"),
    Column("_event_id", "STRING"),
    Column("_ingested_at", "TIMESTAMP"),
)
# The date found in an object's path when a pipeline replaces one partition per file.
DEFAULT_PARTITION_PATTERN = r"(\d{4}-\d{2}-\d{2})"
DEFAULT_QUARANTINE_PREFIX = "_quarantine/"
# Pipeline fields that choose files or judge them but leave a loaded file's rows as they are.
NOT_ROW_SHAPING = frozenset(
    {
        "name",
        "bucket",
        "prefix",
        "glob",
        "bad_rows",
        "sweep_lookback_days",
        "skip_same_content",
        "load",
    }
)
# How far back an undated sweep looks: well inside the ledger's retention (30 days).
DEFAULT_SWEEP_LOOKBACK_DAYS = 3


@dataclass(frozen=True)
class CsvOptions:
    delimiter: str = ","
    header: bool = True
    quote_char: str = '"'  # "" turns quoting off
    null_values: tuple[str, ...] = ("",)
    encoding: str = "utf-8"
    skip_rows: int = 0  # lines before the header (or before the data when there is none)
    # BigQuery's option for gs:// loads; the service's own reader always reads quoted newlines.
    allow_quoted_newlines: bool = False


@dataclass(frozen=True)
class BadRowPolicy:
    max_count: int | None = None
    max_ratio: float | None = 0.0
    quarantine: str | None = None  # gs://bucket/prefix/ ; default: the source bucket

    def exceeded(self, bad: int, read: int) -> bool:
        if self.max_count is not None and bad > self.max_count:
            return True
        return self.max_ratio is not None and read > 0 and bad / read > self.max_ratio


@dataclass(frozen=True)
class Transform:
    op: str
    column: str
    to: str | None = None
    value: str | None = None
    pattern: str | None = None
    format: str | None = None  # strptime format: `cast`, and `from_path` for compact dates
    formats: tuple[str, ...] = ()  # `cast`: more strptime formats, tried after `format`
    decimal_separator: str | None = None  # `cast`: "," reads 12,50 as 12.50

    @property
    def all_formats(self) -> tuple[str, ...]:
        """Every format a `cast` tries, in order: the first that parses a value wins."""
        return ((self.format,) if self.format else ()) + self.formats


@dataclass(frozen=True)
class Pipeline:
    name: str
    bucket: str
    table: TableSpec
    format: Format = "csv"
    prefix: str = ""
    glob: str | None = None
    compression: Compression = "auto"
    csv: CsvOptions = field(default_factory=CsvOptions)
    bad_rows: BadRowPolicy = field(default_factory=BadRowPolicy)
    transforms: tuple[Transform, ...] = ()
    lineage: bool = True
    write_mode: WriteMode = "append"
    partition_date: PartitionSource = "path"
    partition_pattern: str = DEFAULT_PARTITION_PATTERN
    ignore_unknown_fields: bool = False
    sweep_lookback_days: int = DEFAULT_SWEEP_LOOKBACK_DAYS
    # A new generation with the bytes of the name's last completed one is not loaded again.
    skip_same_content: bool = True
    # How rows reach the table: a load job (free, 1,500 per table per day) or the Storage
    # Write API's pending streams (billed per byte, no per-table job quota).
    load: LoadPath = "job"

    def matches(self, bucket: str, name: str) -> bool:
        if bucket != self.bucket or self._is_own_quarantine(bucket, name):
            return False
        if "{date}" in self.prefix:
            return self._matches_template(name)
        if not name.startswith(self.prefix):
            return False
        return self.glob is None or fnmatch.fnmatchcase(name[len(self.prefix) :], self.glob)

    def _is_own_quarantine(self, bucket: str, name: str) -> bool:
        """Quarantine files must never be ingested by the pipeline that wrote them."""
        q_bucket, q_prefix = self.quarantine_location
        return bucket == q_bucket and name.startswith(q_prefix)

    @property
    def quarantine_location(self) -> tuple[str, str]:
        """(bucket, prefix) of this pipeline's quarantine files: the policy's ``gs://`` URI, or
        ``_quarantine/`` in the source bucket."""
        target = self.bad_rows.quarantine or f"gs://{self.bucket}/{DEFAULT_QUARANTINE_PREFIX}"
        q_bucket, _, q_prefix = target.removeprefix("gs://").partition("/")
        return q_bucket, q_prefix

    def _matches_template(self, name: str) -> bool:
        head, _, tail = self.prefix.partition("{date}")
        pattern = re.escape(head) + r"\d{4}-\d{2}-\d{2}" + re.escape(tail)
        found = re.match(pattern, name)
        if found is None:
            return False
        return self.glob is None or fnmatch.fnmatchcase(name[found.end() :], self.glob)

    def prefix_for(self, date: str | None) -> str:
        if "{date}" in self.prefix:
            if date is None:
                return self.prefix.split("{date}", 1)[0]
            return self.prefix.replace("{date}", date)
        return self.prefix

    @property
    def version(self) -> str:
        """Changes whenever anything that shapes the loaded rows changes, and only then.

        It is part of each load's job id: were it to change with a setting that leaves the
        rows as they are (which files match, the bad-row threshold, the quarantine), a file
        whose ledger record has expired would be loaded again under a new job id.
        """
        shaping = {k: v for k, v in asdict(self).items() if k not in NOT_ROW_SHAPING}
        canonical = json.dumps(shaping, sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def output_columns(self) -> tuple[Column, ...]:
        extra = LINEAGE_COLUMNS if self.lineage else ()
        return self.table.columns + extra

    @property
    def output_table(self) -> TableSpec:
        """The destination table as loaded: the schema plus lineage columns."""
        t = self.table
        return TableSpec(t.name, self.output_columns, t.partition_field, t.clustering)

    @property
    def needs_transform(self) -> bool:
        """False when the file's rows are the table's rows as they are (the gs:// fast path)."""
        return bool(self.transforms) or self.lineage or self.ignore_unknown_fields


@dataclass(frozen=True)
class PipelineSet:
    pipelines: tuple[Pipeline, ...]
    source: Path | None = None

    def matching(self, bucket: str, name: str) -> list[Pipeline]:
        return [p for p in self.pipelines if p.matches(bucket, name)]

    def get(self, name: str) -> Pipeline | None:
        return next((p for p in self.pipelines if p.name == name), None)
