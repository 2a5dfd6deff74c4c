"""validate/transform: cast columns to the schema, apply transforms, add lineage.

Renames and drops pick the file's columns; constants and values parsed from the object's path
fill computed columns; ``cast`` transforms give strptime formats for date and time columns (the
first that parses wins) or a decimal comma. RECORD and REPEATED columns: see nested.py.
Everything is vectorized (see casts.py); a row that fails any check is dropped from the batch
and reported with its reason, and never stops the file. A pipeline that replaces one partition
per file also checks that every row belongs to that partition.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime

import pyarrow as pa
import pyarrow.compute as pc

from service.errors import PermanentError
from service.models import Column
from service.pipeline.casts import CastRule, arrow_schema, convert
from service.pipeline.context import BadRow, RowNumbers, UnitContext
from service.pipeline.definition import Pipeline
from service.pipeline.nested import convert_nested

# Lineage columns whose one value per unit is stored as a dictionary (load jobs' Parquet).
LINEAGE_TEXT = ("_source_uri", "_event_id")
LINEAGE_TEXT_TYPE = pa.dictionary(pa.int32(), pa.string())
# Rows the unit's lineage columns are first built for; longer batches build them again.
LINEAGE_ROWS = 64 * 1024


@dataclass(frozen=True)
class Transformed:
    batch: pa.RecordBatch
    bad: list[BadRow]
    rows_in: int
    days: frozenset[date] = field(default_factory=frozenset)  # partition dates seen


class Transformer:
    """Turns parsed batches into batches of the pipeline's output schema."""

    def __init__(self, ctx: UnitContext) -> None:
        self.ctx = ctx
        self.pipeline: Pipeline = ctx.pipeline
        self.columns = self.pipeline.table.columns
        self.schema = output_schema(self.pipeline)
        self._loose = pa.schema([pa.field(f.name, f.type, nullable=True) for f in self.schema])
        self.text = self.pipeline.format != "parquet"
        transforms = self.pipeline.transforms
        self.renames = {t.column: t.to for t in transforms if t.op == "rename" and t.to}
        self.drops = {t.column for t in transforms if t.op == "drop"}
        self.rules = {
            t.column: CastRule(t.all_formats, t.decimal_separator)
            for t in transforms
            if t.op == "cast"
        }
        self.computed = self._computed_values()
        self.partition_day = ctx.path_partition_day()
        self._checked_columns = False
        self._lineage_columns: list[pa.Array] = []

    def _computed_values(self) -> dict[str, pa.Scalar]:
        """Constants and path values, cast once; a value that does not fit fails the file."""
        values: dict[str, pa.Scalar] = {}
        by_name = {c.name: c for c in self.columns}
        for t in self.pipeline.transforms:
            if t.op not in ("constant", "from_path"):
                continue
            text = t.value if t.op == "constant" else self._from_path(t.pattern or "", t.column)
            column = by_name[t.column]
            if t.op == "from_path" and t.format and text is not None:
                text = _reformat(text, t.format, column)
            converted, failed = convert(pa.array([text], pa.string()), column, text=True)
            if failed:
                raise PermanentError(f"transform for {t.column}: {failed[0]}")
            values[t.column] = converted[0]
        return values

    def _from_path(self, pattern: str, column: str) -> str:
        found = re.search(pattern, self.ctx.object.ref.name)
        if found is None:
            raise PermanentError(f"{column}: the object name does not match {pattern!r}")
        named = found.groupdict().get("value")
        return str(named if named is not None else found.group(found.lastindex or 0))

    def __call__(self, batch: pa.RecordBatch, rows: RowNumbers) -> Transformed:
        columns = self._source_columns(batch)
        count = batch.num_rows
        reasons: dict[int, str] = {}
        arrays: list[pa.Array] = []
        for column in self.columns:
            values = self._column(column, columns, count, reasons)
            arrays.append(values)
        days = self._partition_check(arrays, reasons)
        if self.pipeline.lineage:
            arrays.extend(self._lineage(count))
        table = pa.RecordBatch.from_arrays(arrays, schema=self._loose)
        if reasons:
            keep = pa.array([i not in reasons for i in range(count)], pa.bool_())
            table = table.filter(keep)
        good = table.cast(self.schema)
        bad = [
            BadRow.clipped(rows.of(i), reason, _raw_row(batch, i))
            for i, reason in sorted(reasons.items())
        ]
        return Transformed(good, bad, count, days)

    def _column(
        self, column: Column, columns: dict[str, pa.Array], count: int, reasons: dict[int, str]
    ) -> pa.Array:
        if column.name in self.computed:
            return pa.repeat(self.computed[column.name], count)
        raw = columns.get(column.name)
        if raw is None:
            raw = pa.nulls(count, pa.string())
        if column.nested:
            values, failed = convert_nested(
                raw, column, text=self.text, ignore_unknown=self.pipeline.ignore_unknown_fields
            )
        else:
            values, failed = convert(raw, column, text=self.text, rule=self.rules.get(column.name))
        for index, reason in failed.items():
            reasons.setdefault(index, reason)
        return values

    def _source_columns(self, batch: pa.RecordBatch) -> dict[str, pa.Array]:
        wanted = {c.name for c in self.columns}
        columns: dict[str, pa.Array] = {}
        for name, array in zip(batch.schema.names, batch.columns, strict=True):
            if name in self.drops:
                continue
            target = self.renames.get(name, name)
            if target not in wanted:
                if self.pipeline.ignore_unknown_fields:
                    continue
                raise PermanentError(f"file column {name!r} is not in the table schema")
            columns[target] = array
        if not self._checked_columns and self.pipeline.format != "ndjson":
            # CSV and Parquet files have one set of columns: a missing one fails the file.
            # (An NDJSON record lacking a required field is one bad row instead.)
            missing = [
                c.name
                for c in self.columns
                if c.name not in columns and c.name not in self.computed and c.required
            ]
            if missing:
                raise PermanentError(f"file lacks required columns: {', '.join(missing)}")
            self._checked_columns = True
        return columns

    def _partition_check(self, arrays: list[pa.Array], reasons: dict[int, str]) -> frozenset[date]:
        """Replace mode: rows must fall in the replaced partition (path), or the dates seen."""
        field_name = self.pipeline.table.partition_field
        if self.pipeline.write_mode != "replace_partition" or field_name is None:
            return frozenset()
        index = [c.name for c in self.columns].index(field_name)
        days = pc.cast(arrays[index], pa.date32(), safe=False)
        if self.partition_day is None:
            valid = [d for d in pc.unique(days).to_pylist() if d is not None]
            bad_rows = [i for i in _indices(pc.is_null(days)) if i not in reasons]
            for i in bad_rows:
                reasons[i] = f"{field_name}: a row without a partition date cannot replace one"
            return frozenset(valid)
        outside = pc.invert(pc.equal(days, pa.scalar(self.partition_day, pa.date32())))
        for i in _indices(outside.fill_null(True)):
            reasons.setdefault(
                i,
                f"{field_name}: row is not in partition {self.partition_day}, "
                "which this file replaces",
            )
        return frozenset({self.partition_day})

    def _lineage(self, count: int) -> list[pa.Array]:
        """The same values on every row of the unit: built once, each batch takes a slice."""
        if not self._lineage_columns or count > len(self._lineage_columns[0]):
            self._lineage_columns = self._lineage_values(max(count, LINEAGE_ROWS))
        return [values.slice(0, count) for values in self._lineage_columns]

    def _lineage_values(self, count: int) -> list[pa.Array]:
        ref = self.ctx.object.ref
        text = _constant_text if self.pipeline.load == "job" else _plain_text
        return [
            text(ref.uri, count),
            pa.repeat(pa.scalar(ref.generation, pa.int64()), count),
            text(self.ctx.event.event_id, count),
            pa.repeat(pa.scalar(self.ctx.started_at, pa.timestamp("us", tz="UTC")), count),
        ]


def output_schema(pipeline: Pipeline) -> pa.Schema:
    """The Arrow schema of loaded rows. For load jobs lineage text is dictionary-encoded: the
    same value on every row costs four bytes a row, and Parquet stores it once per row group.
    The Write API takes plain types only: there it is plain text (built once per unit)."""
    schema = arrow_schema(pipeline.output_columns)
    if not pipeline.lineage or pipeline.load != "job":
        return schema
    for name in LINEAGE_TEXT:
        index = schema.get_field_index(name)
        schema = schema.set(index, schema.field(index).with_type(LINEAGE_TEXT_TYPE))
    return schema


def _constant_text(value: str, count: int) -> pa.Array:
    zeros = pa.repeat(pa.scalar(0, pa.int32()), count)
    return pa.DictionaryArray.from_arrays(zeros, pa.array([value], pa.string()))


def _plain_text(value: str, count: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, pa.string()), count)


def _reformat(text: str, fmt: str, column: Column) -> str:
    """A path value in a compact form (``20261120`` with ``%Y%m%d``) as ISO 8601."""
    try:
        parsed = datetime.strptime(text, fmt)
    except ValueError as exc:
        raise PermanentError(
            f"{column.name}: {text!r} from the path does not match {fmt!r}"
        ) from exc
    return parsed.date().isoformat() if column.type == "DATE" else parsed.isoformat()


def _indices(mask: pa.Array) -> list[int]:
    return [int(i) for i in pc.indices_nonzero(mask.fill_null(False)).to_pylist()]


def _raw_row(batch: pa.RecordBatch, index: int) -> str:
    """The row as read, as a JSON object of the file's fields (bytes shown as text)."""
    row = {}
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        value = column[index].as_py()
        row[name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return json.dumps(row, ensure_ascii=False, default=str)
