"""The pipelines file (TOML), read and validated once at start-up.

Every error names the file, the pipeline and the field, and every pipeline is checked, so one
run of ``ingest check-config`` lists all broken pipelines.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from service.errors import ConfigError
from service.ledger import RETENTION
from service.models import Column, TableSpec
from service.pipeline.config import (
    DEFAULT_PARTITION_PATTERN,
    DEFAULT_SWEEP_LOOKBACK_DAYS,
    BadRowPolicy,
    CsvOptions,
    Pipeline,
    PipelineSet,
    Transform,
)

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
# Column types a `cast` transform with a strptime format can produce.
TIME_TYPES = frozenset({"DATE", "DATETIME", "TIMESTAMP"})
# Transform operations and the keys each one requires.
TRANSFORM_KEYS: dict[str, tuple[str, ...]] = {
    "rename": ("column", "to"),
    "drop": ("column",),
    "constant": ("column", "value"),
    "from_path": ("column", "pattern"),
    "cast": ("column", "format"),
}


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

    def choice(self, key: str, allowed: tuple[str, ...]) -> Any:
        value = self.get(key, str, allowed[0])
        if value not in allowed:
            raise self.fail(key, f"must be {' or '.join(allowed)}")
        return value

    def pipeline(self) -> Pipeline:
        self.get("name", str, required=True)
        fmt = self.choice("format", ("csv", "ndjson", "parquet"))
        compression = self.choice("compression", ("auto", "gzip", "none"))
        table = self.table()
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
            transforms=self.transforms(table),
            lineage=self.get("lineage", bool, True),
            ignore_unknown_fields=self.get("ignore_unknown_fields", bool, False),
            sweep_lookback_days=self.sweep_lookback_days(),
            **self.write_mode(table),
        )

    def sweep_lookback_days(self) -> int:
        days: int = self.get("sweep_lookback_days", int, DEFAULT_SWEEP_LOOKBACK_DAYS)
        # Older files than the ledger remembers would be loaded a second time by a sweep.
        if not 1 <= days < RETENTION.days:
            raise self.fail("sweep_lookback_days", f"must be 1 to {RETENTION.days - 1} days")
        return days

    def write_mode(self, table: TableSpec) -> dict[str, Any]:
        mode = self.choice("write_mode", ("append", "replace_partition"))
        source = self.choice("partition_date", ("path", "column"))
        pattern = self.get("partition_pattern", str, DEFAULT_PARTITION_PATTERN)
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise self.fail("partition_pattern", f"bad regex: {exc}") from exc
        if compiled.groups != 1:
            raise self.fail("partition_pattern", "needs exactly one group: the YYYY-MM-DD date")
        if mode == "replace_partition" and table.partition_field is None:
            raise self.fail("write_mode", "replace_partition needs partition_field")
        return {"write_mode": mode, "partition_date": source, "partition_pattern": pattern}

    def table(self) -> TableSpec:
        name = self.get("table", str, required=True)
        if name.count(".") != 1 or not all(name.split(".")):
            raise self.fail("table", "must be DATASET.TABLE")
        columns = self.schema()
        by_name = {c.name: c for c in columns}
        if len(by_name) != len(columns):
            raise self.fail("schema", "column names must be unique")
        partition = self.get("partition_field", str)
        if partition is not None and partition not in by_name:
            raise self.fail("partition_field", f"{partition!r} is not a schema column")
        if partition is not None and by_name[partition].type not in TIME_TYPES:
            raise self.fail("partition_field", "must be a DATE, DATETIME or TIMESTAMP column")
        clustering = tuple(self.get("clustering", list, []))
        if len(clustering) > 4:
            raise self.fail("clustering", "BigQuery allows at most 4 clustering columns")
        for col in clustering:
            if col not in by_name:
                raise self.fail("clustering", f"{col!r} is not a schema column")
        return TableSpec(name, columns, partition, clustering)

    def schema(self) -> tuple[Column, ...]:
        if "schema" not in self.entry:
            raise self.fail("schema", "is required")
        ref = self.entry["schema"]
        if isinstance(ref, list):
            fields: Any = ref  # inline, as [[pipelines.schema]] tables
        elif isinstance(ref, str):
            fields = self._schema_file(ref)
        else:
            raise self.fail("schema", "must be a JSON schema file name or a list of fields")
        if isinstance(fields, dict):
            fields = fields.get("fields", fields.get("schema", []))
        if not isinstance(fields, list) or not fields:
            raise self.fail("schema", "must be a BigQuery JSON schema (a list of fields)")
        return tuple(self.column(f, i) for i, f in enumerate(fields))

    def _schema_file(self, ref: str) -> Any:
        schema_path = (self.path.parent / ref).resolve()
        try:
            return json.loads(schema_path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise self.fail("schema", f"file {schema_path} not found") from exc
        except json.JSONDecodeError as exc:
            raise self.fail("schema", f"{schema_path} is not JSON: {exc}") from exc

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
        known = set(CsvOptions.__dataclass_fields__)
        for key in raw:
            if key not in known:
                raise self.fail(f"csv.{key}", f"unknown option (known: {', '.join(sorted(known))})")
        defaults = CsvOptions()
        options = CsvOptions(
            delimiter=self._option(raw, "delimiter", str, defaults.delimiter),
            header=self._option(raw, "header", bool, defaults.header),
            quote_char=self._option(raw, "quote_char", str, defaults.quote_char),
            null_values=tuple(self._option(raw, "null_values", list, list(defaults.null_values))),
            encoding=self._option(raw, "encoding", str, defaults.encoding),
            skip_rows=self._option(raw, "skip_rows", int, defaults.skip_rows),
            allow_quoted_newlines=self._option(
                raw, "allow_quoted_newlines", bool, defaults.allow_quoted_newlines
            ),
        )
        self._check_csv(options)
        return options

    def _option(self, raw: dict[str, Any], key: str, kind: type, default: Any) -> Any:
        value = raw.get(key, default)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(f"csv.{key}", f"must be a {kind.__name__}")
        return value

    def _check_csv(self, options: CsvOptions) -> None:
        if len(options.delimiter) != 1 or options.delimiter in "\r\n":
            raise self.fail("csv.delimiter", "must be one character (not a newline)")
        if len(options.quote_char) > 1 or options.quote_char == options.delimiter:
            raise self.fail("csv.quote_char", "must be one character other than the delimiter")
        if not all(isinstance(v, str) for v in options.null_values):
            raise self.fail("csv.null_values", "must be a list of strings")
        if options.skip_rows < 0:
            raise self.fail("csv.skip_rows", "must not be negative")
        try:
            "".encode(options.encoding)
        except LookupError as exc:
            raise self.fail("csv.encoding", f"unknown encoding {options.encoding!r}") from exc

    def bad_rows(self) -> BadRowPolicy:
        raw = self.get("bad_rows", dict, {})
        quarantine = raw.get("quarantine")
        if quarantine is not None and (
            not isinstance(quarantine, str)
            or not quarantine.startswith("gs://")
            or len(quarantine) <= 5
        ):
            raise self.fail("bad_rows.quarantine", "must be a gs://BUCKET/PREFIX URI")
        max_count = raw.get("max_count")
        max_ratio = raw.get("max_ratio", 0.0 if max_count is None else None)
        if max_count is not None and (
            not isinstance(max_count, int) or isinstance(max_count, bool) or max_count < 0
        ):
            raise self.fail("bad_rows.max_count", "must be a non-negative integer")
        if max_ratio is not None and not (
            isinstance(max_ratio, int | float)
            and not isinstance(max_ratio, bool)
            and 0 <= max_ratio <= 1
        ):
            raise self.fail("bad_rows.max_ratio", "must be between 0 and 1")
        return BadRowPolicy(max_count, max_ratio, quarantine)

    def transforms(self, table: TableSpec) -> tuple[Transform, ...]:
        raw = self.get("transforms", list, [])
        columns = {c.name: c for c in table.columns}
        return tuple(self.transform(i, spec, columns) for i, spec in enumerate(raw))

    def transform(self, index: int, spec: Any, columns: dict[str, Column]) -> Transform:
        where = f"transforms[{index}]"
        if not isinstance(spec, dict) or spec.get("op") not in TRANSFORM_KEYS:
            raise self.fail(f"{where}.op", f"must be one of {', '.join(TRANSFORM_KEYS)}")
        op = spec["op"]
        for key in TRANSFORM_KEYS[op]:
            if key not in spec:
                raise self.fail(f"{where}.{key}", "is required")
        for key, value in spec.items():
            if key != "op" and not isinstance(value, str):
                raise self.fail(f"{where}.{key}", "must be a string")
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
            raise self.fail(f"{where}.{key}", f"{target!r} is not a schema column")
        if t.op == "from_path" and t.pattern is not None:
            try:
                re.compile(t.pattern)
            except re.error as exc:
                raise self.fail(f"{where}.pattern", f"bad regex: {exc}") from exc
        if t.op == "cast" and columns[t.column].type not in TIME_TYPES:
            raise self.fail(f"{where}.format", "applies to DATE, DATETIME and TIMESTAMP columns")
