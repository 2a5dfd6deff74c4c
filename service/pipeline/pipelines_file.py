"""The pipelines file (TOML), read and validated once at start-up.

Every error names the file, the pipeline and the field, and every pipeline is checked, so one
run of ``ingest check-config`` lists all broken pipelines.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from service.bigquery_types import TIME_TYPES, TYPES, canonical
from service.errors import ConfigError
from service.ledger import RETENTION
from service.models import Column, TableSpec
from service.pipeline.definition import (
    DEFAULT_PARTITION_PATTERN,
    DEFAULT_SWEEP_LOOKBACK_DAYS,
    BadRowPolicy,
    CsvOptions,
    LoadPath,
    Pipeline,
    PipelineSet,
    Transform,
)
from service.typed_reader import Section, load_json, load_toml

# Where a missing or unreadable pipelines file's path comes from.
PATH_HINT = " (set INGEST_PIPELINES)"
# Transform operations and the keys each one requires.
TRANSFORM_KEYS: dict[str, tuple[str, ...]] = {
    "rename": ("column", "to"),
    "drop": ("column",),
    "constant": ("column", "value"),
    "from_path": ("column", "pattern"),
    "cast": ("column", "format"),
}


def load_pipelines(path: Path) -> PipelineSet:
    """Every pipeline of the file; a file with none is refused (every event would be ignored)."""
    top = load_toml(path, "pipelines file", PATH_HINT)
    entries = top.raw.get("pipelines", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: 'pipelines' must be an array of tables ([[pipelines]])")
    if not entries:
        raise ConfigError(
            f"{path}: no pipelines: add a [[pipelines]] table (with none, every event would be"
            " acknowledged as ignored)"
        )
    pipelines: list[Pipeline] = []
    errors: list[str] = []
    for i, entry in enumerate(entries):
        try:
            pipelines.append(_Parser(path, i, entry).pipeline())
        except ConfigError as exc:
            errors.append(str(exc))
    names = [p.name for p in pipelines]
    for name in sorted({n for n in names if names.count(n) > 1}):
        errors.append(f"{path}: pipeline {name!r}: name: is used more than once")
    if errors:
        raise ConfigError("\n".join(errors))
    return PipelineSet(tuple(pipelines), path)


class _Parser:
    """Reads one [[pipelines]] entry, naming the file, pipeline and field in every error."""

    def __init__(self, path: Path, index: int, entry: Any) -> None:
        self.path = path
        default_name = f"#{index + 1}"
        self.name = str(
            entry.get("name", default_name) if isinstance(entry, dict) else default_name
        )
        self.entry = Section(path, f"pipeline {self.name!r}: ", entry)

    def pipeline(self) -> Pipeline:
        self.entry.get("name", str, required=True)
        fmt = self.entry.choice("format", ("csv", "ndjson", "parquet"))
        compression = self.entry.choice("compression", ("auto", "gzip", "none"))
        table = self.table()
        return Pipeline(
            name=self.name,
            bucket=self.entry.get("bucket", str, required=True),
            table=table,
            format=fmt,
            prefix=self.entry.get("prefix", str, ""),
            glob=self.entry.get("glob", str),
            compression=compression,
            csv=self.csv(),
            bad_rows=self.bad_rows(),
            transforms=self.transforms(table),
            lineage=self.entry.get("lineage", bool, True),
            ignore_unknown_fields=self.entry.get("ignore_unknown_fields", bool, False),
            sweep_lookback_days=self.sweep_lookback_days(),
            load=self.load_path(),
            **self.write_mode(table),
        )

    def load_path(self) -> LoadPath:
        path: LoadPath = self.entry.choice("load", ("job", "stream"))
        if path == "stream" and self.entry.get("write_mode", str, "append") != "append":
            # A partition replacement is a WRITE_TRUNCATE load job; streams only append.
            raise self.entry.fail("load", "stream appends only: replace_partition needs a job")
        return path

    def sweep_lookback_days(self) -> int:
        days: int = self.entry.get("sweep_lookback_days", int, DEFAULT_SWEEP_LOOKBACK_DAYS)
        # Older files than the ledger remembers would be loaded a second time by a sweep.
        if not 1 <= days < RETENTION.days:
            raise self.entry.fail("sweep_lookback_days", f"must be 1 to {RETENTION.days - 1} days")
        return days

    def write_mode(self, table: TableSpec) -> dict[str, Any]:
        mode = self.entry.choice("write_mode", ("append", "replace_partition"))
        source = self.entry.choice("partition_date", ("path", "column"))
        pattern = self.entry.get("partition_pattern", str, DEFAULT_PARTITION_PATTERN)
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise self.entry.fail("partition_pattern", f"bad regex: {exc}") from exc
        if compiled.groups != 1:
            raise self.entry.fail(
                "partition_pattern", "needs exactly one group: the YYYY-MM-DD date"
            )
        if mode == "replace_partition" and table.partition_field is None:
            raise self.entry.fail("write_mode", "replace_partition needs partition_field")
        return {"write_mode": mode, "partition_date": source, "partition_pattern": pattern}

    def table(self) -> TableSpec:
        name = self.entry.get("table", str, required=True)
        if name.count(".") != 1 or not all(name.split(".")):
            raise self.entry.fail("table", "must be DATASET.TABLE")
        columns = self.schema()
        by_name = {c.name: c for c in columns}
        if len(by_name) != len(columns):
            raise self.entry.fail("schema", "column names must be unique")
        partition = self.entry.get("partition_field", str)
        if partition is not None and partition not in by_name:
            raise self.entry.fail("partition_field", f"{partition!r} is not a schema column")
        if partition is not None and by_name[partition].type not in TIME_TYPES:
            raise self.entry.fail("partition_field", "must be a DATE, DATETIME or TIMESTAMP column")
        clustering = tuple(self.entry.get("clustering", list, []))
        if len(clustering) > 4:
            raise self.entry.fail("clustering", "BigQuery allows at most 4 clustering columns")
        for col in clustering:
            if col not in by_name:
                raise self.entry.fail("clustering", f"{col!r} is not a schema column")
        return TableSpec(name, columns, partition, clustering)

    def schema(self) -> tuple[Column, ...]:
        ref = self.entry.get("schema", object, required=True)
        if isinstance(ref, list):
            fields: Any = ref  # inline, as [[pipelines.schema]] tables
        elif isinstance(ref, str):
            fields = self._schema_file(ref)
        else:
            raise self.entry.fail("schema", "must be a JSON schema file name or a list of fields")
        if isinstance(fields, dict):
            fields = fields.get("fields", fields.get("schema", []))
        if not isinstance(fields, list) or not fields:
            raise self.entry.fail("schema", "must be a BigQuery JSON schema (a list of fields)")
        return tuple(self.column(f, i) for i, f in enumerate(fields))

    def _schema_file(self, ref: str) -> Any:
        try:
            return load_json((self.path.parent / ref).resolve(), "schema file")
        except ConfigError as exc:
            raise self.entry.fail("schema", str(exc)) from exc

    def column(self, spec: Any, index: int) -> Column:
        if not isinstance(spec, dict) or "name" not in spec or "type" not in spec:
            raise self.entry.fail(f"schema[{index}]", "each field needs a name and a type")
        type_ = canonical(str(spec["type"]))
        if type_ not in TYPES:
            raise self.entry.fail(f"schema[{index}].type", f"{type_} is not supported")
        mode = str(spec.get("mode", "NULLABLE")).upper()
        if mode not in ("NULLABLE", "REQUIRED"):
            raise self.entry.fail(f"schema[{index}].mode", "must be NULLABLE or REQUIRED")
        return Column(str(spec["name"]), type_, mode, spec.get("description"))

    def csv(self) -> CsvOptions:
        raw = self.entry.section("csv")
        raw.unknown_keys(set(CsvOptions.__dataclass_fields__))
        defaults = CsvOptions()
        options = CsvOptions(
            delimiter=raw.get("delimiter", str, defaults.delimiter),
            header=raw.get("header", bool, defaults.header),
            quote_char=raw.get("quote_char", str, defaults.quote_char),
            null_values=tuple(raw.get("null_values", list, list(defaults.null_values))),
            encoding=raw.get("encoding", str, defaults.encoding),
            skip_rows=raw.get("skip_rows", int, defaults.skip_rows),
            allow_quoted_newlines=raw.get(
                "allow_quoted_newlines", bool, defaults.allow_quoted_newlines
            ),
        )
        self._check_csv(options)
        return options

    def _check_csv(self, options: CsvOptions) -> None:
        if len(options.delimiter) != 1 or options.delimiter in "\r\n":
            raise self.entry.fail("csv.delimiter", "must be one character (not a newline)")
        if len(options.quote_char) > 1 or options.quote_char == options.delimiter:
            raise self.entry.fail(
                "csv.quote_char", "must be one character other than the delimiter"
            )
        if not all(isinstance(v, str) for v in options.null_values):
            raise self.entry.fail("csv.null_values", "must be a list of strings")
        if options.skip_rows < 0:
            raise self.entry.fail("csv.skip_rows", "must not be negative")
        try:
            "".encode(options.encoding)
        except LookupError as exc:
            raise self.entry.fail("csv.encoding", f"unknown encoding {options.encoding!r}") from exc

    def bad_rows(self) -> BadRowPolicy:
        raw = self.entry.get("bad_rows", dict, {})
        quarantine = raw.get("quarantine")
        if quarantine is not None and (
            not isinstance(quarantine, str)
            or not quarantine.startswith("gs://")
            or len(quarantine) <= 5
        ):
            raise self.entry.fail("bad_rows.quarantine", "must be a gs://BUCKET/PREFIX URI")
        max_count = raw.get("max_count")
        max_ratio = raw.get("max_ratio", 0.0 if max_count is None else None)
        if max_count is not None and (
            not isinstance(max_count, int) or isinstance(max_count, bool) or max_count < 0
        ):
            raise self.entry.fail("bad_rows.max_count", "must be a non-negative integer")
        if max_ratio is not None and not (
            isinstance(max_ratio, int | float)
            and not isinstance(max_ratio, bool)
            and 0 <= max_ratio <= 1
        ):
            raise self.entry.fail("bad_rows.max_ratio", "must be between 0 and 1")
        return BadRowPolicy(max_count, max_ratio, quarantine)

    def transforms(self, table: TableSpec) -> tuple[Transform, ...]:
        raw = self.entry.get("transforms", list, [])
        columns = {c.name: c for c in table.columns}
        return tuple(self.transform(i, spec, columns) for i, spec in enumerate(raw))

    def transform(self, index: int, spec: Any, columns: dict[str, Column]) -> Transform:
        where = f"transforms[{index}]"
        if not isinstance(spec, dict) or spec.get("op") not in TRANSFORM_KEYS:
            raise self.entry.fail(f"{where}.op", f"must be one of {', '.join(TRANSFORM_KEYS)}")
        op = spec["op"]
        for key in TRANSFORM_KEYS[op]:
            if key not in spec:
                raise self.entry.fail(f"{where}.{key}", "is required")
        for key, value in spec.items():
            if key != "op" and not isinstance(value, str):
                raise self.entry.fail(f"{where}.{key}", "must be a string")
        transform = Transform(
            op=op,
            column=spec["column"],
            to=spec.get("to"),
            value=spec.get("value"),
            pattern=spec.get("pattern"),
            format=spec.get("format"),
        )
        self._check_transform(where, transform, columns)
        return transform

    def _check_transform(self, where: str, t: Transform, columns: dict[str, Column]) -> None:
        target = t.to if t.op == "rename" else t.column
        key = "to" if t.op == "rename" else "column"
        if t.op != "drop" and target not in columns:
            raise self.entry.fail(f"{where}.{key}", f"{target!r} is not a schema column")
        if t.op == "from_path" and t.pattern is not None:
            try:
                re.compile(t.pattern)
            except re.error as exc:
                raise self.entry.fail(f"{where}.pattern", f"bad regex: {exc}") from exc
        if t.op == "cast" and columns[t.column].type not in TIME_TYPES:
            raise self.entry.fail(
                f"{where}.format", "applies to DATE, DATETIME and TIMESTAMP columns"
            )
