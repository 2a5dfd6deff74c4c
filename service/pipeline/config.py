"""The pipelines file (TOML): what each pipeline reads, how, and where it loads.

Validated once at start-up; every error names the file, the pipeline and the field.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from service.errors import ConfigError
from service.models import Column, TableSpec

Format = Literal["csv", "ndjson", "parquet"]
Compression = Literal["auto", "gzip", "none"]
WriteMode = Literal["append", "replace_partition"]

# BigQuery column types this service can validate and load.
SUPPORTED_TYPES = frozenset(
    {
        "STRING",
        "INTEGER",
        "INT64",
        "FLOAT",
        "FLOAT64",
        "NUMERIC",
        "BOOLEAN",
        "BOOL",
        "TIMESTAMP",
        "DATE",
        "DATETIME",
        "BYTES",
    }
)
# Transform operations and the keys each one requires.
TRANSFORM_KEYS: dict[str, tuple[str, ...]] = {
    "rename": ("column", "to"),
    "drop": ("column",),
    "constant": ("column", "value"),
    "from_path": ("column", "pattern"),
}
# Lineage columns added to every loaded row when a pipeline asks for lineage.
LINEAGE_COLUMNS = (
    Column("_source_uri", "STRING"),
    Column("_source_generation", "INTEGER"),
    Column("_event_id", "STRING"),
    Column("_ingested_at", "TIMESTAMP"),
)


@dataclass(frozen=True)
class CsvOptions:
    delimiter: str = ","
    header: bool = True
    quote_char: str = '"'
    null_values: tuple[str, ...] = ("",)
    encoding: str = "utf-8"
    skip_rows: int = 0


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

    def matches(self, bucket: str, name: str) -> bool:
        if bucket != self.bucket or "{date}" in self.prefix:
            return bucket == self.bucket and self._matches_template(name)
        if not name.startswith(self.prefix):
            return False
        return self.glob is None or fnmatch.fnmatchcase(name[len(self.prefix) :], self.glob)

    def _matches_template(self, name: str) -> bool:
        head, _, tail = self.prefix.partition("{date}")
        pattern = re.escape(head) + r"\d{4}-\d{2}-\d{2}" + re.escape(tail)
        if not re.match(pattern, name):
            return False
        rest = re.sub("^" + pattern, "", name)
        return self.glob is None or fnmatch.fnmatchcase(rest, self.glob)

    def prefix_for(self, date: str | None) -> str:
        if "{date}" in self.prefix:
            if date is None:
                return self.prefix.split("{date}", 1)[0]
            return self.prefix.replace("{date}", date)
        return self.prefix

    @property
    def version(self) -> str:
        """Changes whenever anything that shapes the loaded rows changes."""
        canonical = json.dumps(asdict(self), sort_keys=True, default=str)
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


@dataclass(frozen=True)
class PipelineSet:
    pipelines: tuple[Pipeline, ...]
    source: Path | None = None

    def matching(self, bucket: str, name: str) -> list[Pipeline]:
        return [p for p in self.pipelines if p.matches(bucket, name)]

    def get(self, name: str) -> Pipeline | None:
        return next((p for p in self.pipelines if p.name == name), None)


def load_pipelines(path: Path) -> PipelineSet:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: pipelines file not found (set INGEST_PIPELINES)") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    entries = raw.get("pipelines", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: 'pipelines' must be an array of tables ([[pipelines]])")
    pipelines = tuple(_Parser(path, i, entry).pipeline() for i, entry in enumerate(entries))
    names = [p.name for p in pipelines]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"{path}: pipeline {name!r}: name is used more than once")
    return PipelineSet(pipelines, path)


class _Parser:
    """Reads one [[pipelines]] entry, naming the file, pipeline and field in every error."""

    def __init__(self, path: Path, index: int, entry: Any) -> None:
        self.path = path
        self.entry: dict[str, Any] = entry if isinstance(entry, dict) else {}
        self.name = str(self.entry.get("name", f"#{index + 1}"))

    def fail(self, field_name: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: pipeline {self.name!r}: {field_name}: {message}")

    def get(self, key: str, kind: type, default: Any = None, *, required: bool = False) -> Any:
        if key not in self.entry:
            if required:
                raise self.fail(key, "is required")
            return default
        value = self.entry[key]
        if not isinstance(value, kind):
            raise self.fail(key, f"must be a {kind.__name__}")
        return value

    def pipeline(self) -> Pipeline:
        self.get("name", str, required=True)
        fmt = self.get("format", str, "csv")
        if fmt not in ("csv", "ndjson", "parquet"):
            raise self.fail("format", "must be csv, ndjson or parquet")
        compression = self.get("compression", str, "auto")
        if compression not in ("auto", "gzip", "none"):
            raise self.fail("compression", "must be auto, gzip or none")
        write_mode = self.get("write_mode", str, "append")
        if write_mode not in ("append", "replace_partition"):
            raise self.fail("write_mode", "must be append or replace_partition")
        table = self.table()
        if write_mode == "replace_partition" and table.partition_field is None:
            raise self.fail("write_mode", "replace_partition needs partition_field")
        return Pipeline(
            name=self.name,
            bucket=self.get("bucket", str, required=True),
            table=table,
            format=fmt,
            prefix=self.get("prefix", str, ""),
            glob=self.get("glob", str),
            compression=compression,
            csv=self.csv(),
            bad_rows=self.bad_rows(),
            transforms=self.transforms(),
            lineage=self.get("lineage", bool, True),
            write_mode=write_mode,
        )

    def table(self) -> TableSpec:
        name = self.get("table", str, required=True)
        if name.count(".") != 1:
            raise self.fail("table", "must be DATASET.TABLE")
        columns = self.schema()
        partition = self.get("partition_field", str)
        names = {c.name for c in columns}
        if partition is not None and partition not in names:
            raise self.fail("partition_field", f"{partition!r} is not a schema column")
        clustering = tuple(self.get("clustering", list, []))
        for col in clustering:
            if col not in names:
                raise self.fail("clustering", f"{col!r} is not a schema column")
        return TableSpec(name, columns, partition, clustering)

    def schema(self) -> tuple[Column, ...]:
        ref = self.get("schema", str, required=True)
        schema_path = (self.path.parent / ref).resolve()
        try:
            fields = json.loads(schema_path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise self.fail("schema", f"file {schema_path} not found") from exc
        except json.JSONDecodeError as exc:
            raise self.fail("schema", f"{schema_path} is not JSON: {exc}") from exc
        if isinstance(fields, dict):
            fields = fields.get("fields", fields.get("schema", []))
        if not isinstance(fields, list) or not fields:
            raise self.fail("schema", "must be a BigQuery JSON schema (a list of fields)")
        return tuple(self.column(f, i) for i, f in enumerate(fields))

    def column(self, spec: Any, index: int) -> Column:
        if not isinstance(spec, dict) or "name" not in spec or "type" not in spec:
            raise self.fail(f"schema[{index}]", "each field needs a name and a type")
        type_ = str(spec["type"]).upper()
        if type_ not in SUPPORTED_TYPES:
            raise self.fail(f"schema[{index}].type", f"{type_} is not supported")
        mode = str(spec.get("mode", "NULLABLE")).upper()
        if mode not in ("NULLABLE", "REQUIRED"):
            raise self.fail(f"schema[{index}].mode", "must be NULLABLE or REQUIRED")
        return Column(str(spec["name"]), type_, mode, spec.get("description"))

    def csv(self) -> CsvOptions:
        raw = self.get("csv", dict, {})
        defaults = CsvOptions()
        try:
            options = CsvOptions(
                delimiter=str(raw.get("delimiter", defaults.delimiter)),
                header=bool(raw.get("header", defaults.header)),
                quote_char=str(raw.get("quote_char", defaults.quote_char)),
                null_values=tuple(raw.get("null_values", defaults.null_values)),
                encoding=str(raw.get("encoding", defaults.encoding)),
                skip_rows=int(raw.get("skip_rows", defaults.skip_rows)),
            )
        except (TypeError, ValueError) as exc:
            raise self.fail("csv", str(exc)) from exc
        if len(options.delimiter) != 1:
            raise self.fail("csv.delimiter", "must be one character")
        try:
            "".encode(options.encoding)
        except LookupError as exc:
            raise self.fail("csv.encoding", f"unknown encoding {options.encoding!r}") from exc
        return options

    def bad_rows(self) -> BadRowPolicy:
        raw = self.get("bad_rows", dict, {})
        quarantine = raw.get("quarantine")
        if quarantine is not None and not str(quarantine).startswith("gs://"):
            raise self.fail("bad_rows.quarantine", "must be a gs:// URI")
        max_count = raw.get("max_count")
        max_ratio = raw.get("max_ratio", 0.0 if max_count is None else None)
        if max_count is not None and (not isinstance(max_count, int) or max_count < 0):
            raise self.fail("bad_rows.max_count", "must be a non-negative integer")
        if max_ratio is not None and not (
            isinstance(max_ratio, int | float) and 0 <= max_ratio <= 1
        ):
            raise self.fail("bad_rows.max_ratio", "must be between 0 and 1")
        return BadRowPolicy(max_count, max_ratio, quarantine)

    def transforms(self) -> tuple[Transform, ...]:
        raw = self.get("transforms", list, [])
        result = []
        for i, spec in enumerate(raw):
            where = f"transforms[{i}]"
            if not isinstance(spec, dict) or spec.get("op") not in TRANSFORM_KEYS:
                raise self.fail(where, f"op must be one of {', '.join(TRANSFORM_KEYS)}")
            for key in TRANSFORM_KEYS[spec["op"]]:
                if key not in spec:
                    raise self.fail(f"{where}.{key}", "is required")
            if spec["op"] == "from_path":
                try:
                    re.compile(spec["pattern"])
                except re.error as exc:
                    raise self.fail(f"{where}.pattern", f"bad regex: {exc}") from exc
            result.append(
                Transform(
                    op=spec["op"],
                    column=str(spec["column"]),
                    to=spec.get("to"),
                    value=None if spec.get("value") is None else str(spec["value"]),
                    pattern=spec.get("pattern"),
                )
            )
        return tuple(result)
