"""The pipelines file (TOML), read and validated once at start-up.

Every error names the file, the pipeline and the field, and every pipeline is checked, so one
run of ``ingest check-config`` lists all broken pipelines. Every key of every table is known
(``ACCEPTED_KEYS``): anything else is refused with the closest known key, never ignored.
Longer than 300 lines: every table of the file has its reader and its key table here, so a new
key is added in one place (the schema file is read by schema_file.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from service.bigquery_types import NUMBER_TYPES, TIME_TYPES
from service.errors import ConfigError
from service.ledger import RETENTION
from service.models import Column, TableSpec
from service.pipeline import option_rules
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
from service.pipeline.overlaps import overlaps
from service.pipeline.schema_file import SchemaError, read_schema
from service.typed_reader import Section, load_toml

# Where a missing or unreadable pipelines file's path comes from.
PATH_HINT = " (set INGEST_PIPELINES)"
# Transform operations and the keys each one requires.
TRANSFORM_KEYS: dict[str, tuple[str, ...]] = {
    "rename": ("column", "to"),
    "drop": ("column",),
    "constant": ("column", "value"),
    "from_path": ("column", "pattern"),
    "cast": ("column",),
}
# What a `cast` says, one or more of: how dates read, or what separates decimals.
CAST_KEYS = ("format", "formats", "decimal_separator")
# Transform keys an operation may give: `from_path` reformats a compact date it finds.
TRANSFORM_OPTIONAL_KEYS: dict[str, tuple[str, ...]] = {"from_path": ("format",), "cast": CAST_KEYS}
# The keys of a [[pipelines]] table: the model's fields, with `table` given as its name, schema,
# partitioning and clustering.
PIPELINE_KEYS = frozenset(Pipeline.__dataclass_fields__) | {
    "schema",
    "partition_field",
    "clustering",
}
# Every key each table of the file accepts (transforms: any operation's).
ACCEPTED_KEYS: dict[str, frozenset[str]] = {
    "": frozenset({"pipelines"}),
    "pipelines": PIPELINE_KEYS,
    "pipelines.csv": frozenset(CsvOptions.__dataclass_fields__),
    "pipelines.bad_rows": frozenset(BadRowPolicy.__dataclass_fields__),
    "pipelines.transforms": frozenset(
        {"op"}.union(*TRANSFORM_KEYS.values(), *TRANSFORM_OPTIONAL_KEYS.values())
    ),
}


def load_pipelines(path: Path) -> PipelineSet:
    """Every pipeline of the file; a file with none is refused (every event would be ignored)."""
    top = load_toml(path, "pipelines file", PATH_HINT, known=ACCEPTED_KEYS[""])
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
    errors.extend(f"{path}: {o.describe()}" for o in overlaps(pipelines) if o.same_table)
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
        self.entry = Section(path, f"pipeline {self.name!r}: ", entry, known=PIPELINE_KEYS)

    def pipeline(self) -> Pipeline:
        self.checked(
            "name", self.entry.get("name", str, required=True), option_rules.pipeline_name_problem
        )
        fmt = self.entry.choice("format", ("csv", "ndjson", "parquet"))
        compression = self.entry.choice("compression", ("auto", "gzip", "none"))
        table = self.table()
        bucket = self.entry.get("bucket", str, required=True)
        return Pipeline(
            name=self.name,
            bucket=self.checked("bucket", bucket, option_rules.bucket_problem),
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
            skip_same_content=self.entry.get("skip_same_content", bool, True),
            load=self.load_path(),
            **self.write_mode(table),
        )

    def load_path(self) -> LoadPath:
        path: LoadPath = self.entry.choice("load", ("job", "stream"))
        if path == "stream" and self.entry.get("write_mode", str, "append") != "append":
            # A partition replacement is a WRITE_TRUNCATE load job; streams only append.
            raise self.entry.fail("load", "stream appends only: replace_partition needs a job")
        return path

    def checked(self, key: str, value: str, problem: Callable[[str], str | None]) -> str:
        """``value`` when the rule ``problem`` finds none; otherwise the error naming ``key``."""
        found = problem(value)
        if found is not None:
            raise self.entry.fail(key, found)
        return value

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
        dataset, table_name = name.split(".")
        self.checked("table", dataset, option_rules.dataset_problem)
        self.checked("table", table_name, option_rules.table_problem)
        columns = self.schema()
        by_name = {c.name: c for c in columns}
        partition = self.entry.get("partition_field", str)
        if partition is not None and partition not in by_name:
            raise self.entry.fail("partition_field", f"{partition!r} is not a schema column")
        if partition is not None and (
            by_name[partition].type not in TIME_TYPES or by_name[partition].repeated
        ):
            raise self.entry.fail("partition_field", "must be a DATE, DATETIME or TIMESTAMP column")
        clustering = tuple(self.entry.get("clustering", list, []))
        if len(clustering) > 4:
            raise self.entry.fail("clustering", "BigQuery allows at most 4 clustering columns")
        for col in clustering:
            if col not in by_name:
                raise self.entry.fail("clustering", f"{col!r} is not a schema column")
        return TableSpec(name, columns, partition, clustering)

    def schema(self) -> tuple[Column, ...]:
        try:
            return read_schema(self.entry.get("schema", object, required=True), self.path.parent)
        except SchemaError as exc:
            raise self.entry.fail(exc.where, exc.message) from exc

    def csv(self) -> CsvOptions:
        raw = self.entry.section("csv", known=ACCEPTED_KEYS["pipelines.csv"])
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
        raw = self.entry.section("bad_rows", known=ACCEPTED_KEYS["pipelines.bad_rows"])
        quarantine = raw.get("quarantine", str)
        if quarantine is not None:
            if not quarantine.startswith("gs://") or len(quarantine) <= 5:
                raise raw.fail("quarantine", "must be a gs://BUCKET/PREFIX URI")
            bucket = quarantine.removeprefix("gs://").partition("/")[0]
            problem = option_rules.bucket_problem(bucket)
            if problem is not None:
                raise raw.fail("quarantine", problem)
        max_count = raw.get("max_count", int)
        max_ratio = raw.get("max_ratio", object, 0.0 if max_count is None else None)
        if max_count is not None and max_count < 0:
            raise raw.fail("max_count", "must be a non-negative integer")
        ratio = isinstance(max_ratio, int | float) and not isinstance(max_ratio, bool)
        if max_ratio is not None and not (ratio and 0 <= max_ratio <= 1):
            raise raw.fail("max_ratio", "must be between 0 and 1")
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
        Section(self.path, f"{self.entry.where}{where}.", spec).unknown_keys(
            {"op", *TRANSFORM_KEYS[op], *TRANSFORM_OPTIONAL_KEYS.get(op, ())}
        )
        for key in TRANSFORM_KEYS[op]:
            if key not in spec:
                raise self.entry.fail(f"{where}.{key}", "is required")
        formats = self._formats(where, spec)
        for key, value in spec.items():
            if key not in ("op", "formats") and not isinstance(value, str):
                raise self.entry.fail(f"{where}.{key}", "must be a string")
        transform = Transform(
            op=op,
            column=spec["column"],
            to=spec.get("to"),
            value=spec.get("value"),
            pattern=spec.get("pattern"),
            format=spec.get("format"),
            formats=formats,
            decimal_separator=spec.get("decimal_separator"),
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
        for fmt in (t.format, *t.formats):
            if fmt is not None:
                self.checked(f"{where}.format", fmt, option_rules.strptime_problem)
        if t.op != "cast":
            return
        if not any((t.format, t.formats, t.decimal_separator)):
            raise self.entry.fail(where, f"a cast needs one of {', '.join(CAST_KEYS)}")
        kind = columns[t.column].type
        if (t.format or t.formats) and kind not in TIME_TYPES:
            raise self.entry.fail(
                f"{where}.format", "applies to DATE, DATETIME and TIMESTAMP columns"
            )
        if t.decimal_separator is not None and (
            kind not in NUMBER_TYPES or t.decimal_separator not in (".", ",")
        ):
            raise self.entry.fail(
                f"{where}.decimal_separator",
                'must be "," or "." and applies to FLOAT, NUMERIC and BIGNUMERIC columns',
            )

    def _formats(self, where: str, spec: dict[str, Any]) -> tuple[str, ...]:
        """``formats`` (tried in order, the first that parses wins), and ``format`` first."""
        listed = spec.get("formats", [])
        if not isinstance(listed, list) or not all(isinstance(f, str) and f for f in listed):
            raise self.entry.fail(f"{where}.formats", "must be a list of strptime formats")
        return tuple(listed)
